"""The device socket's WebSocket protocol: what it leaves behind once a connection is gone."""

from __future__ import annotations

import asyncio
import inspect

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.services import Services
from server.ws_protocol import DeviceWebSocketProtocol
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
