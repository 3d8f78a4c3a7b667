"""The device socket's place in the ASGI app: in front of everything else, not behind the router.

A WebSocket lives for hours; every middleware and routing layer it passes keeps a
coroutine frame alive for all that time, per connection. None of them does anything for
the device socket (CORS, request metrics, HTTP error pages and routing are for HTTP), so
the app hands socket connections to their endpoint before its middleware stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

SocketEndpoint = Callable[[WebSocket], Awaitable[None]]


class SocketFirstApp(Starlette):
    """A Starlette app that serves WebSocket connections to `socket_path` with `socket_endpoint` directly."""

    def __init__(self, *, socket_path: str, socket_endpoint: SocketEndpoint, **options: Any) -> None:
        super().__init__(**options)
        self.socket_path = socket_path
        self.socket_endpoint = socket_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The device socket at its path; everything else through the middleware and the router."""
        # uvicorn puts a `--root-path` in front of the path; the app's own paths are without it.
        if scope["type"] == "websocket" and scope["path"].removeprefix(scope.get("root_path", "")) == self.socket_path:
            scope["app"] = self
            await self.socket_endpoint(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)
