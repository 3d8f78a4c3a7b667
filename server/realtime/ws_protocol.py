"""uvicorn's WebSocket protocol (the `websockets` sans-I/O one), with the socket's transport handed to the app.

The hub writes each event's frame, built once, straight into every subscriber's transport
(channels/hub.py). ASGI has no way to do that: `websocket.send` encodes the text again for
each connection and goes through the protocol's own send path. So this protocol puts its
asyncio transport in the connection's scope, under `extensions["kiosk.transport"]`, and the
device socket writes complete frames to it. Frames are written whole and synchronously,
as the protocol writes its own (pings, close), so the two never interleave.

It also keeps less per connection, since thousands of them sit idle for hours: its inbox
is a list and a future instead of an `asyncio.Queue` (three deques), and the handshake's
request headers and response are let go once the connection is accepted. And it leaves
no reference cycle behind (the upgrading HTTP protocol's parser, websockets' frame
parser), so that a closed connection is freed at once rather than by the collector's
rare full passes: with thousands of connections coming and going, that garbage piled up
by megabytes between passes (bench/churn.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

TRANSPORT_EXTENSION = "kiosk.transport"


class _Inbox:
    """The part of `asyncio.Queue` the protocol uses (one reader: the app), light enough to keep per connection."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        """Add a message and wake the reader."""
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        """True when nothing is waiting to be read."""
        return not self._items

    async def get(self) -> ASGIReceiveEvent:
        """The oldest message, waiting for one if need be."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class DeviceWebSocketProtocol(WebSocketsSansIOProtocol):
    """The sans-I/O protocol whose scope carries its transport (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = cast(Any, _Inbox())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the connection over from the HTTP protocol that upgraded it, and let that one go."""
        upgraded = transport.get_protocol()
        super().connection_made(transport)
        if isinstance(upgraded, HttpToolsProtocol):
            # The HTTP protocol is never told that the connection is lost (uvicorn drops its parser then): its
            # parser, which refers back to it, would keep it in a reference cycle with its request and transport.
            upgraded.parser = cast(Any, None)

    def connection_lost(self, exc: Exception | None) -> None:
        """Close as uvicorn does, then end the frame parser, which would otherwise keep the connection alive."""
        super().connection_lost(exc)
        # websockets' parser is a generator suspended on bytes that will now never come, and its frame refers to
        # the sans-I/O connection that refers to it: a reference cycle, which only the collector's rare full
        # passes free, holding the connection and all it refers to. Closed, it refers to nothing.
        self.conn.parser.close()

    def handle_connect(self, event: Request) -> None:
        """Accept as uvicorn does; the app's task has not run yet, so the scope can still be added to."""
        super().handle_connect(event)
        scope = cast(dict[str, Any], getattr(self, "scope", None))
        if scope is not None:
            scope["extensions"][TRANSPORT_EXTENSION] = self.transport

    async def send(self, message: ASGISendEvent) -> None:
        """Send as uvicorn does; once accepted, the handshake's request and response are no longer needed."""
        await super().send(message)
        if message["type"] == "websocket.accept" and self.request is not None:
            # The sans-I/O parser keeps the request for the connection's life; its headers are the bulk of it.
            self.request.headers.clear()
            self.request = self.response = cast(Any, None)
