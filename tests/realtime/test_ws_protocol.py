"""The device socket's WebSocket protocol: what it leaves behind once a connection is gone."""

from __future__ import annotations

import asyncio
import gc
import inspect

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.realtime.ws_protocol import DeviceWebSocketProtocol
from server.services import Services
from tests.live import add_device, live_server
from tests.world import World


async def test_a_closed_connection_leaves_no_parser_cycle(services: Services, world: World) -> None:
    """Once a socket is closed, websockets' frame parser has ended: it no longer holds the connection in a cycle."""
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services) as live:
        async with DeviceClient(live.ws, token):
            (protocol,) = [p for p in live.server.server_state.connections if isinstance(p, DeviceWebSocketProtocol)]
            assert inspect.getgeneratorstate(protocol.conn.parser) == inspect.GEN_SUSPENDED
        async with asyncio.timeout(5):
            while not protocol.disconnected:  # noqa: ASYNC110 (the protocol offers no event for it)
                await asyncio.sleep(0.01)
        assert inspect.getgeneratorstate(protocol.conn.parser) == inspect.GEN_CLOSED


def http_protocols() -> int:
    """How many uvicorn HTTP protocol objects exist, dead ones in a reference cycle included."""
    return sum(isinstance(item, HttpToolsProtocol) for item in gc.get_objects())


async def test_the_upgraded_http_protocol_is_freed_at_once(services: Services, world: World) -> None:
    """The HTTP protocol that upgraded a socket is gone once the socket is open, without waiting for the collector."""
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services) as live:
        gc.collect()
        gc.disable()  # so that only reference counting can free it
        try:
            before = http_protocols()
            async with DeviceClient(live.ws, token):
                assert http_protocols() == before
        finally:
            gc.enable()
