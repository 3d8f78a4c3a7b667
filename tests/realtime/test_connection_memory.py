"""What a finished connection leaves behind: nothing that only the cycle collector could free.

The server runs with rare full collections (server/realtime/serving.py), so garbage in reference cycles piles
up under connection churn; a connection must be freed by reference counting alone.
"""

from __future__ import annotations

import asyncio
import gc
import json

import websockets

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.realtime.connection import Connection
from server.services import Services
from tests.live import add_device, live_server
from tests.world import World

LIMIT_S = 5.0


def connections() -> int:
    """How many socket connections exist, dead ones held in a reference cycle included."""
    return sum(isinstance(item, Connection) for item in gc.get_objects())


async def until_freed(count: int) -> None:
    """Wait until only `count` connections are left, failing after the limit."""
    async with asyncio.timeout(LIMIT_S):
        while connections() > count:  # noqa: ASYNC110 (freeing has no event to wait on)
            await asyncio.sleep(0.02)


async def test_a_refused_hello_frees_its_connection_at_once(services: Services, world: World) -> None:
    """A socket closed 4001 at hello leaves no connection behind for the collector."""
    async with live_server(services) as live:
        gc.collect()
        gc.disable()  # so that only reference counting can free it
        try:
            before = connections()
            async with websockets.connect(live.ws) as ws:
                await ws.send(json.dumps({"type": "hello", "token": "not a token"}))
                await asyncio.wait_for(ws.wait_closed(), LIMIT_S)
                assert ws.close_code == 4001
            await until_freed(before)
        finally:
            gc.enable()


async def test_a_device_that_leaves_first_frees_its_connection_at_once(services: Services, world: World) -> None:
    """A device that closes its own socket leaves no connection behind for the collector."""
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services) as live:
        gc.collect()
        gc.disable()
        try:
            before = connections()
            async with DeviceClient(live.ws, token) as kiosk:
                assert (await kiosk.request("no.such.command"))["error"]["code"] == "invalid"
            await until_freed(before)
        finally:
            gc.enable()
