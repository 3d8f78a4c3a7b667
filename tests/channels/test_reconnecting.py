"""The reconnecting device against a live server: it reconnects, resumes, resends and obeys close codes and the
server's retry hints."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import websockets
from sqlalchemy import func, select

from channels import frames
from channels.client import DeviceClient, HandshakeRefused
from channels.reconnecting import ReconnectingDevice, backoff_s, reconnect_wait_s
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


def test_the_backoff_is_full_jitter_under_a_ceiling_that_doubles_up_to_a_cap() -> None:
    """A wait is anywhere from 0 to the attempt's ceiling (0.2 s, 0.4 s, ... up to 5 s): a fleet dropped at once
    comes back spread over the whole ceiling, not bunched at its top."""
    rng = random.Random(1)
    first = [backoff_s(0, rng) for _ in range(1000)]
    late = [backoff_s(9, rng) for _ in range(1000)]
    assert 0 <= min(first) and max(first) <= 0.2 and 0 <= min(late) < 0.5 and 4.5 < max(late) <= 5.0
    # Spread evenly: about half of the late waits below half the cap.
    assert 400 < sum(wait < 2.5 for wait in late) < 600


def test_a_retry_hint_longer_than_the_backoff_is_waited_for() -> None:
    """`retry_after=3.0` in a close reason makes the wait at least 3 s; a shorter hint, or none, leaves the backoff;
    only a reason that ends with the hint counts."""
    rng = random.Random(2)
    assert frames.retry_after("server busy; retry_after=3.0") == 3.0
    assert frames.retry_after("server going away; retry_after=0") == 0.0
    assert frames.retry_after("server going away") is None
    assert frames.retry_after("retry_after=3.0 or so") is None
    assert all(reconnect_wait_s(0, "server busy; retry_after=3.0", rng) == 3.0 for _ in range(100))
    assert all(reconnect_wait_s(9, "server busy; retry_after=0.1", rng) <= 5.0 for _ in range(100))
    assert max(reconnect_wait_s(9, "server busy; retry_after=0.1", rng) for _ in range(100)) > 0.1
    assert all(reconnect_wait_s(0, "", rng) <= 0.2 for _ in range(100))


def test_the_server_spreads_its_hints_over_the_spread() -> None:
    """`with_retry_hint` appends a hint at random within the spread; a spread of 0 says come back at once."""
    hints = [frames.retry_after(frames.with_retry_hint("server busy", 5)) for _ in range(200)]
    assert all(hint is not None and 0 <= hint <= 5 for hint in hints)
    assert len(set(hints)) > 20
    assert frames.with_retry_hint("server going away", 0) == "server going away; retry_after=0.0"


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


async def test_a_server_with_too_many_hellos_in_progress_sends_the_next_socket_away_with_a_hint(
    services: Services, world: World
) -> None:
    """While WS_MAX_HANDSHAKES sockets are saying hello, one more is closed with 1013 and `retry_after` within
    WS_RETRY_SPREAD_S, at once rather than after waiting; once the hello is done, the next socket is welcomed."""
    services.settings.WS_MAX_HANDSHAKES = 1
    services.settings.WS_RETRY_SPREAD_S = 2.0
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services) as live:
        # Upgraded, and saying nothing yet: its hello is in progress until it speaks or times out.
        holder = await websockets.connect(live.ws)
        try:
            refused = await _refused(live.ws, token)
            assert refused.code == frames.TRY_AGAIN_LATER
            hint = frames.retry_after(refused.reason)
            assert refused.reason.startswith("server busy") and hint is not None and 0 <= hint <= 2.0
            assert services.metrics.registry.get_sample_value("ws_handshakes_refused_busy_total") == 1
            await holder.send(json.dumps({"type": "hello", "token": token}))
            assert json.loads(await asyncio.wait_for(holder.recv(), TIMEOUT_S))["type"] == "welcome"
            async with DeviceClient(live.ws, token) as welcomed:
                assert welcomed.welcome["principal"]["kind"] == "device"
        finally:
            await holder.close()


async def _refused(url: str, token: str) -> HandshakeRefused:
    """The refusal of a hello on `url`, waiting (briefly) for the socket before it to be counted."""
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            try:
                await DeviceClient(url, token).connect(TIMEOUT_S)
            except HandshakeRefused as refused:
                return refused
            await asyncio.sleep(0.05)
