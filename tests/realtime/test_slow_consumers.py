"""Slow consumers: a client that stops reading is closed with 4008 while the others get every event,
and one that never reads again is dropped after the close timeout.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import uuid

from channels import names
from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.services import Services
from tests.live import add_device, live_server, socket_limits
from tests.realtime.socket_helpers import TIMEOUT_S, raw_socket, say_hello, until_closed
from tests.world import World


async def test_a_client_that_stops_reading_is_closed_4008_and_others_get_every_event(
    services: Services, world: World
) -> None:
    """A subscriber that stops reading is dropped with 4008 once its unsent bytes pass the bound; the others miss
    nothing."""
    # close_timeout_s: this client does read again, later.
    limits = socket_limits(services, send_buffer_bytes=64 * 1024, close_timeout_s=60.0)
    _, slow_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    fast_tokens = [(await add_device(services, world.branch_a, DeviceKind.KIOSK))[1] for _ in range(2)]
    menu = names.branch_menu(world.branch_a)
    overflows = "ws_send_queue_overflows_total"
    async with live_server(services, limits) as live:
        host, port = live.http.removeprefix("http://").split(":")
        # A small receive buffer and a one-frame client queue: the slow side's unread bytes soon fill
        # the server's socket buffer, and the server's writer for it has to wait.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.connect((host, int(port)))
        raw.setblocking(False)
        async with (
            raw_socket(live.ws, sock=raw, max_queue=1) as slow,
            DeviceClient(live.ws, fast_tokens[0]) as fast,
            DeviceClient(live.ws, fast_tokens[1]) as other,
        ):
            await say_hello(slow, slow_token)
            published = 0
            async with asyncio.timeout(30):
                while services.metrics.registry.get_sample_value(overflows) == 0:
                    assert published < 1000, "the slow client was never dropped"
                    # Random text: permessage-deflate would shrink anything repetitive to nothing.
                    blob = json.dumps({"blob": secrets.token_urlsafe(24_000)})
                    await services.broker.publish(menu, str(uuid.uuid4()), "test.blob", blob, "2026-01-01T00:00:00Z")
                    published += 1
                    # Let the fast clients' writers run, as a real stream of events would.
                    await asyncio.sleep(0.002)
            for client in (fast, other):
                assert (await client.next_frame(TIMEOUT_S))["type"] == "snapshot"
                seqs = [(await client.next_event(menu, timeout=TIMEOUT_S))["seq"] for _ in range(published)]
                assert seqs == list(range(1, published + 1))
                assert client.close_code is None
            # Once the slow client reads again it finds what was already on its way, then the 4008 close.
            received, code = await until_closed(slow, limit_s=30)
            assert code == 4008
            events = [frame["seq"] for frame in received if frame["type"] == "event"]
            # In order with no gap, and never the event that found it too far behind.
            assert 0 < len(events) < published and events == list(range(1, len(events) + 1))
    assert services.metrics.registry.get_sample_value(overflows) == 1


async def test_a_client_that_never_reads_again_is_dropped_after_the_close_timeout(
    services: Services, world: World
) -> None:
    """Its 4008 close frame waits behind what it does not read; after the close timeout the server lets it go."""
    limits = socket_limits(services, send_buffer_bytes=64 * 1024, close_timeout_s=0.5)
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    menu = names.branch_menu(world.branch_a)
    async with live_server(services, limits) as live:
        host, port = live.http.removeprefix("http://").split(":")
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.connect((host, int(port)))
        raw.setblocking(False)
        async with raw_socket(live.ws, sock=raw, max_queue=1) as silent:
            await say_hello(silent, token)
            assert not services.hub.empty.is_set()
            async with asyncio.timeout(30):
                while not services.hub.empty.is_set():
                    blob = json.dumps({"blob": secrets.token_urlsafe(24_000)})
                    await services.broker.publish(menu, str(uuid.uuid4()), "test.blob", blob, "2026-01-01T00:00:00Z")
                    await asyncio.sleep(0.005)
            # The server dropped it (no reader, no close handshake): nothing of it is left in the hub.
            assert services.metrics.registry.get_sample_value("ws_send_queue_overflows_total") == 1
