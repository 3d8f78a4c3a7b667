"""Graceful shutdown: the command in flight gets its reply, then the connection closes with 1001."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from channels.client import DeviceClient
from persistence.enums import DeviceKind
from server.commands import command_registry
from server.commands.router import CommandContext, CommandRegistry, CommandSpec, Who
from server.services import Services
from tests.live import add_device, live_server
from tests.realtime.socket_helpers import TIMEOUT_S
from tests.world import World


class _Nothing(BaseModel):
    """No data."""


@dataclass
class SlowCommand:
    """The app's commands plus a kiosk command `test.slow` that takes half a second; `started` once it has begun."""

    commands: CommandRegistry
    started: asyncio.Event


@pytest.fixture
def slow_command() -> SlowCommand:
    """The app's commands with `test.slow` added."""
    started = asyncio.Event()

    async def slow(ctx: CommandContext, data: _Nothing) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(0.5)
        return {"done": True}

    commands = command_registry()
    commands.commands["test.slow"] = CommandSpec(
        "test.slow", _Nothing, slow, Who(devices=frozenset({DeviceKind.KIOSK})), "slow", None, ()
    )
    return SlowCommand(commands, started)


async def test_shutdown_lets_the_command_in_flight_reply_then_closes_1001(
    services: Services, world: World, slow_command: SlowCommand
) -> None:
    """Stopping the server (SIGTERM) lets the command being handled send its reply, then closes with 1001."""
    _, token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, idle_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    async with live_server(services, commands=slow_command.commands) as live:
        async with DeviceClient(live.ws, token) as kiosk, DeviceClient(live.ws, idle_token) as idle:
            in_flight = asyncio.get_running_loop().create_task(kiosk.request("test.slow", timeout=TIMEOUT_S))
            await asyncio.wait_for(slow_command.started.wait(), TIMEOUT_S)
            live.server.should_exit = True
            reply = await in_flight
            assert (reply["ok"], reply["data"]) == (True, {"done": True})
            assert await kiosk.wait_closed(TIMEOUT_S) == 1001
            assert await idle.wait_closed(TIMEOUT_S) == 1001
            await asyncio.wait_for(live.task, TIMEOUT_S)
