"""A real uvicorn server in the test's event loop, and device tokens for it."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from persistence.enums import DeviceKind
from persistence.tables import Device
from server.app import create_app
from server.commands.router import CommandRegistry
from server.realtime.limits import SocketLimits
from server.realtime.serving import GracefulServer, uvicorn_config
from server.services import Services
from tests.world import PASSWORD_HASH


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """True when process `pid` holds the socket listening on 127.0.0.1:`port` (Linux, from /proc).

    A port from `free_port` can be taken by another test's server before the child binds it; that
    server would answer the child's /health, so a child is ready only once the listener is its own.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            # local address 0100007F:<port in hex>, state 0A is LISTEN, the tenth field the inode.
            if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A" and fields[9] in inodes:
                return True
    return False


@dataclass
class Live:
    """A running server: its URLs and its services."""

    http: str
    ws: str
    services: Services
    server: GracefulServer
    task: asyncio.Task[None]


def socket_limits(services: Services, **changes: Any) -> SocketLimits:
    """The socket limits of `services`' settings, with some changed."""
    return replace(SocketLimits.from_settings(services.settings), **changes)


@asynccontextmanager
async def live_server(
    services: Services, limits: SocketLimits | None = None, commands: CommandRegistry | None = None
) -> AsyncIterator[Live]:
    """Serve the app over real sockets until the block ends (then shut down gracefully); `limits` for the socket."""
    port = free_port()
    app = create_app(services=services, socket_limits=limits, commands=commands)
    server = GracefulServer(uvicorn_config(app, services.settings, host="127.0.0.1", port=port), services)
    task = asyncio.get_running_loop().create_task(server.serve())
    async with asyncio.timeout(10):
        # uvicorn exposes only a flag for "started".
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    prefix = services.settings.API_V1_STR
    try:
        yield Live(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}{prefix}/ws", services, server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def add_device(services: Services, branch_id: int, kind: DeviceKind, name: str = "") -> tuple[int, str]:
    """Insert an active device; returns its id and an access token for it."""
    async with services.db.session() as session:
        device = Device(branch_id=branch_id, kind=kind, name=name or kind.value, secret_hash=PASSWORD_HASH)
        session.add(device)
        await session.flush()
        device_id = device.id
    token, _ = services.tokens.issue("device", device_id, secret_version=1)
    return device_id, token
