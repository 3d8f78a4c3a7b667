"""Counts and times every HTTP request by route template and status.

The route label is always a template (`/api/v1/users/{user_id}`), never the raw path, so that
the number of series stays bounded whatever paths clients send: REST routes name their
declared path in `scope["route_template"]`, other routes are labelled with the path of
the Starlette route that matched, and anything else is `unmatched`.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.observability.metrics import Metrics

UNMATCHED = "unmatched"
# Clients may send any method name; anything else is counted as OTHER to keep the label bounded too.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """ASGI middleware recording `http_requests_total` and `http_request_duration_seconds`."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, then count it; WebSocket and lifespan traffic passes untouched."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # A request that fails before answering is answered 500 by the server error middleware outside.
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            route = route_label(scope)
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_latency.labels(method, route).observe(elapsed)


def route_label(scope: Scope) -> str:
    """The template of the route that handled the request, or `unmatched`."""
    template = scope.get("route_template")
    if isinstance(template, str):
        return template
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED
