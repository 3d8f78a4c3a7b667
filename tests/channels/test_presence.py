"""Presence on one instance, for every backend: online/offline announcements as connections open and close,
branch lists, and announcements that fail without failing the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.channels.presence_helpers import TIMEOUT_S, Fleet


@pytest.fixture
async def fleet(realtime: tuple[str, str | None]) -> AsyncIterator[Fleet]:
    """Instances of each presence backend in turn (the cluster's keys go with the session's cluster)."""
    built = Fleet(*realtime)
    yield built
    await asyncio.wait_for(built.close_all(), TIMEOUT_S)


async def test_first_connection_announces_the_device_online(fleet: Fleet) -> None:
    """A device's first connection makes it online and announces device.online on its branch's devices channel."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.connected(7, 1, "c1")
        assert await presence.is_online(7)
        [(channel, event, data)] = heard.announcements
        assert (channel, event) == ("branch:1:devices", "device.online")
        assert {key: data[key] for key in ("device_id", "branch_id", "online")} == {
            "device_id": 7,
            "branch_id": 1,
            "online": True,
        }
        assert data["at"].endswith("Z")
        assert abs(datetime.fromisoformat(data["at"]) - datetime.now(UTC)) < timedelta(seconds=5)


async def test_second_connection_of_a_device_announces_nothing(fleet: Fleet) -> None:
    """A reconnect overlapping the old socket keeps the device online without a second device.online."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.connected(7, 1, "c1")
        await presence.connected(7, 1, "c2")
        assert heard.events() == [("device.online", 7)]


async def test_closing_one_of_two_connections_keeps_the_device_online(fleet: Fleet) -> None:
    """The old socket of a reconnected device closing announces nothing and leaves the device online."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.connected(7, 1, "c1")
        await presence.connected(7, 1, "c2")
        await presence.disconnected(7, 1, "c1")
        assert await presence.is_online(7)
        assert heard.events() == [("device.online", 7)]


async def test_closing_the_last_connection_announces_the_device_offline(fleet: Fleet) -> None:
    """The device's last connection closing makes it offline and announces device.offline once."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.connected(7, 1, "c1")
        await presence.connected(7, 1, "c2")
        await presence.disconnected(7, 1, "c1")
        await presence.disconnected(7, 1, "c2")
        await presence.disconnected(7, 1, "c2")
        assert not await presence.is_online(7)
        assert heard.events() == [("device.online", 7), ("device.offline", 7)]
        channel, _, data = heard.announcements[-1]
        assert channel == "branch:1:devices"
        assert (data["device_id"], data["branch_id"], data["online"]) == (7, 1, False)


async def test_unknown_devices_are_offline(fleet: Fleet) -> None:
    """A device never connected is offline, its branch lists nobody, and closing an unknown connection is silent."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.disconnected(9, 1, "never")
        assert not await presence.is_online(9)
        assert await presence.online_devices(1) == set()
        assert heard.announcements == []


async def test_online_devices_lists_each_branchs_connected_devices(fleet: Fleet) -> None:
    """The devices snapshot of a branch holds exactly its devices that have a connection."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, _ = fleet.instance()
        await presence.connected(1, 1, "c1")
        await presence.connected(2, 1, "c2")
        await presence.connected(2, 1, "c3")
        await presence.connected(3, 2, "c4")
        await presence.disconnected(1, 1, "c1")
        assert await presence.online_devices(1) == {2}
        assert await presence.online_devices(2) == {3}


async def test_close_announces_this_instances_devices_offline(fleet: Fleet) -> None:
    """A clean shutdown announces offline, on their own branches, the devices whose connections it held."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.start()
        await presence.connected(7, 1, "c1")
        await presence.connected(7, 1, "c2")
        await presence.connected(8, 2, "c3")
        await fleet.close(presence)
        offline = sorted((channel, data["device_id"]) for channel, event, data in heard.announcements[2:])
        assert offline == [("branch:1:devices", 7), ("branch:2:devices", 8)]
        assert heard.events()[2:] == [("device.offline", 7), ("device.offline", 8)]


async def test_a_failing_announcement_does_not_fail_the_connection(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that cannot publish leaves the device recorded online; the error is logged, not raised."""

    async def broken(channel: str, event: str, data: dict[str, Any]) -> None:
        raise ConnectionError("broker down")

    async with asyncio.timeout(TIMEOUT_S):
        presence = fleet.presence(broken)
        await presence.connected(7, 1, "c1")
        assert await presence.is_online(7)
        assert "could not announce device.online for device 7" in caplog.text
