"""What the socket endpoint's tests share: a bare WebSocket and its frames, hello, waits, tokens and
services with changed settings.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from persistence.base import utcnow
from persistence.database import Database
from server.app import build_services
from server.services import Services
from server.settings import Settings

TIMEOUT_S = 5.0


def bearer(actor_headers: dict[str, str]) -> str:
    """The raw access token in an actor's Authorization header."""
    return actor_headers["Authorization"].split()[1]


@asynccontextmanager
async def raw_socket(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    """A bare WebSocket to the server, for what `DeviceClient` hides: frame order, close codes, silence."""
    async with websockets.connect(url, max_size=None, open_timeout=TIMEOUT_S, close_timeout=1, **options) as ws:
        yield ws


async def recv(ws: ClientConnection, limit_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The next frame, parsed."""
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), limit_s))
    return frame


async def say_hello(ws: ClientConnection, token: str, **extra: Any) -> dict[str, Any]:
    """Say hello; the `welcome` frame."""
    await ws.send(json.dumps({"type": "hello", "token": token, **extra}))
    welcome = await recv(ws)
    assert welcome["type"] == "welcome", welcome
    return welcome


async def until_closed(ws: ClientConnection, limit_s: float = TIMEOUT_S) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame the server sends until it closes, and its close code."""
    received: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(limit_s):
            while True:
                received.append(json.loads(await ws.recv()))
    except websockets.ConnectionClosed as closed:
        return received, closed.rcvd.code if closed.rcvd else None


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until `condition` holds (the server changes it in another task), for at most TIMEOUT_S."""
    for _ in range(int(TIMEOUT_S / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def still_open(ws: ClientConnection) -> None:
    """A ping round trip: proves the connection is open and nothing else was queued before the pong."""
    await ws.send('{"type":"ping"}')
    assert await recv(ws) == {"type": "pong"}


@asynccontextmanager
async def services_with(settings: Settings, db: Database, **overrides: Any) -> AsyncIterator[Services]:
    """Services like the `services` fixture's (same database, Redis keys of their own) with some settings changed."""
    built = build_services(settings.model_copy(update=overrides), db=db, prefix=f"test:{uuid.uuid4()}")
    try:
        yield built
    finally:
        await built.stop()
        await built.backend.close()


def _expired(services: Services, device_id: int) -> str:
    token, _ = services.tokens.issue("device", device_id, secret_version=1, now=utcnow() - timedelta(days=2))
    return token
