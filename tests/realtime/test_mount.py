"""The device socket is served ahead of the app's middleware, at its path with or without a root path."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import httpx
from starlette.websockets import WebSocket

from server.realtime.mount import SocketFirstApp


async def test_the_socket_path_goes_to_the_endpoint_and_everything_else_to_the_app() -> None:
    """WebSockets at the path (behind uvicorn's root path too) reach the endpoint; HTTP and other paths do not."""
    served: list[str] = []

    async def endpoint(websocket: WebSocket) -> None:
        served.append(websocket.scope["path"])

    app = SocketFirstApp(socket_path="/api/v1/ws", socket_endpoint=endpoint)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    sent: list[str] = []
    for path, root_path in (("/api/v1/ws", ""), ("/edge/api/v1/ws", "/edge"), ("/api/v1/other", "")):
        scope = {"type": "websocket", "path": path, "root_path": root_path, "headers": [], "query_string": b""}
        await app(scope, receive, send)
    assert served == ["/api/v1/ws", "/edge/api/v1/ws"]
    assert sent == ["websocket.close"]  # the other path went to the router, which has no such route

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/api/v1/ws")).status_code == 404  # HTTP is never the socket
