"""The simulator's reconnecting device against a live server: it reconnects, resumes, resends and obeys close codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from bench.device import ReconnectingDevice, backoff_s
from channels.client import DeviceClient
from persistence.enums import DeviceKind
from persistence.tables import Cart, Device
from server.services import Services
from tests.live import add_device, live_server
from tests.world import World

TIMEOUT_S = 10.0


async def _frame(device: ReconnectingDevice, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first frame of the device's stream that `wanted` accepts, skipping the others."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            frame = await device.next_frame(TIMEOUT_S)
            if wanted(frame):
                return frame


async def _reconnected(device: ReconnectingDevice, times: int = 1) -> None:
    """Wait until the device has reconnected `times` times in all."""
    async with asyncio.timeout(TIMEOUT_S):
        while device.counts["reconnected"] < times:  # noqa: ASYNC110 (the device counts; nothing to wait on)
            await asyncio.sleep(0.02)


def test_the_backoff_doubles_up_to_a_cap_and_is_never_the_same_twice_in_a_row() -> None:
    """Waits grow from 0.1-0.2 s to 2.5-5 s, jittered so that a whole fleet does not come back at once."""
    import random

    rng = random.Random(1)
    waits = [backoff_s(attempt, rng) for attempt in range(10)]
    assert 0.1 <= waits[0] <= 0.2 and all(2.5 <= wait <= 5.0 for wait in waits[5:])
    assert len(set(waits[5:])) == 5


async def test_a_device_whose_server_goes_away_reconnects_to_another_and_gets_what_it_missed(
    services: Services, world: World
) -> None:
    """Closed with 1001, it tries its instances in turn and resumes: the missed event comes, not a snapshot."""
    device_id, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    channel = f"device:{device_id}"
    async with live_server(services) as first:
        device = ReconnectingDevice([first.ws], token)
        await asyncio.wait_for(device.start(), TIMEOUT_S)
        first_cart = await device.command("cart.create", timeout=TIMEOUT_S)
        await _frame(device, lambda f: f.get("event") == "cart.updated" and f["data"]["id"] == first_cart["id"])
    try:
        async with live_server(services) as second:
            # While the device is away, its own channel moves on (another connection of the same kiosk).
            async with DeviceClient(second.ws, token) as other:
                missed = await other.command("cart.create", timeout=TIMEOUT_S)
            device.urls.append(second.ws)
            await _reconnected(device)
            assert device.welcome["channels"][channel]["resumed"] is True
            frame = await _frame(device, lambda f: f.get("channel") == channel)
            assert (frame["type"], frame["event"], frame["data"]["id"]) == ("event", "cart.updated", missed["id"])
            assert device.counts["closed 1001"] == 1
            assert (await device.command("cart.create", timeout=TIMEOUT_S))["id"] > missed["id"]
            await device.close()
    finally:
        await device.close()


async def test_a_device_whose_history_is_gone_gets_a_snapshot_and_resumes_from_it(
    services: Services, world: World
) -> None:
    """Resuming with an epoch the server no longer knows brings a snapshot; the device keeps its seq and epoch."""
    device_id, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    channel = f"device:{device_id}"
    async with live_server(services) as live:
        device = ReconnectingDevice([live.ws], token)
        try:
            await asyncio.wait_for(device.start(), TIMEOUT_S)
            cart = await device.command("cart.create", timeout=TIMEOUT_S)
            await _frame(device, lambda f: f.get("event") == "cart.updated")  # past the first hello's snapshot
            device.client.positions[channel] = (1, "an-old-epoch")
            await device.client.close()  # the connection drops (the server sees a normal close)
            await _reconnected(device)
            assert device.welcome["channels"][channel]["resumed"] is False
            snapshot = await _frame(device, lambda f: f.get("type") == "snapshot" and f["channel"] == channel)
            assert [c["id"] for c in snapshot["data"]["carts"]] == [cart["id"]]
            place = device.resume_state()[channel]
            assert (place["seq"], place["epoch"]) == (snapshot["seq"], snapshot["epoch"])
        finally:
            await device.close()


class LosesTheFirstReply(DeviceClient):
    """A connection that sends the first command and drops before its reply can be read, as a network cut does."""

    lost: list[str] = []

    async def request(
        self,
        kind: str,
        data: dict[str, Any] | None = None,
        *,
        command_id: str | None = None,
        timeout: float = 10,  # noqa: ASYNC109 (DeviceClient's signature)
    ) -> dict[str, Any]:
        """Send; the first time, close the connection at once and raise as a lost connection does."""
        if not self.lost:
            assert command_id is not None
            self.lost.append(command_id)
            await self.send_raw(json.dumps({"type": kind, "id": command_id, "data": data or {}}))
            await self.close()
            raise ConnectionError("connection lost")
        return await super().request(kind, data, command_id=command_id, timeout=timeout)


async def test_a_command_whose_connection_drops_is_resent_with_its_id_and_takes_effect_once(
    services: Services, world: World
) -> None:
    """The resend on the new connection gets the stored reply: one cart, the same one the lost reply named."""
    device_id, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    LosesTheFirstReply.lost = []
    async with live_server(services) as live:
        device = ReconnectingDevice([live.ws], token, make_client=LosesTheFirstReply)
        try:
            await asyncio.wait_for(device.start(), TIMEOUT_S)
            cart = await device.command("cart.create", timeout=TIMEOUT_S)
            assert device.counts["resent"] == 1 and device.counts["reconnected"] == 1
        finally:
            await device.close()
    async with services.db.session() as session:
        carts = await session.scalar(select(func.count()).select_from(Cart).where(Cart.device_id == device_id))
    assert carts == 1 and cart["device_id"] == device_id


async def test_a_device_closed_4001_gets_a_new_token_and_one_closed_4003_stops(
    services: Services, world: World
) -> None:
    """Its secret rotated, the device renews its token and carries on; disabled, it stops and says why."""
    device_id, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)

    async def renew() -> str:
        async with services.db.session() as session:
            version = (await session.get(Device, device_id)).secret_version  # type: ignore[union-attr]
        fresh, _ = services.tokens.issue("device", device_id, secret_version=version)
        return fresh

    async with (
        live_server(services) as live,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
    ):
        device = ReconnectingDevice([live.ws], token, renew=renew)
        try:
            await asyncio.wait_for(device.start(), TIMEOUT_S)
            rotated = await http.post(f"/api/v1/devices/{device_id}/rotate-secret", headers=world.admin.headers)
            assert rotated.is_success, rotated.text
            await _reconnected(device)
            assert device.counts["closed 4001"] == 1 and device.counts["renewed token"] == 1
            assert (await device.command("cart.create", timeout=TIMEOUT_S))["device_id"] == device_id

            disabled = await http.post(f"/api/v1/devices/{device_id}/disable", headers=world.admin.headers)
            assert disabled.is_success, disabled.text
            await asyncio.wait_for(device.closed.wait(), TIMEOUT_S)
            assert device.close_code == 4003 and device.counts["reconnected"] == 1
        finally:
            await device.close()
