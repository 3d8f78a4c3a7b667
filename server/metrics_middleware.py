"""Counts and times every HTTP request by route template and status. (to be written)"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from server.metrics import Metrics


class MetricsMiddleware:
    """ASGI middleware recording `http_requests_total` and `http_request_duration_seconds`."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
