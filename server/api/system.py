"""`GET /`, `GET /health` and `GET /metrics`: what a load balancer, a monitor and a person first ask.

They live outside `API_V1_STR` and need no token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import server
from server.services import Services
from server.settings import Settings

log = logging.getLogger("server.health")

CHECK_TIMEOUT_S = 2.0
_REASON_MAX = 200


def routes(settings: Settings) -> list[BaseRoute]:
    """The routes outside the API prefix."""
    about = {
        "name": settings.PROJECT_NAME,
        "version": server.__version__,
        "environment": settings.ENVIRONMENT,
        "docs": f"{settings.API_V1_STR}/docs",
    }

    async def root(request: Request) -> Response:
        return JSONResponse(about)

    return [
        Route("/", root, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


async def health(request: Request) -> Response:
    """200 when the database and the broker answer in time, else 503 naming what failed."""
    services: Services = request.app.state.services
    redis = services.redis
    database, broker = await asyncio.gather(
        _check("database", services.db.ping),
        _check("broker", redis.ping) if redis is not None else _in_process(),
    )
    healthy = not database.startswith("error") and not broker.startswith("error")
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": {"database": database, "broker": broker}},
        status_code=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


async def _check(name: str, ping: Callable[[], Awaitable[object]]) -> str:
    """`ok`, or `error: <reason>` when `ping` fails or takes longer than the timeout."""
    try:
        await asyncio.wait_for(ping(), CHECK_TIMEOUT_S)
    except TimeoutError:
        reason = f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # any failure of a backend is a failed check, reported rather than raised
        detail = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__
    else:
        return "ok"
    log.warning("health check failed", extra={"check": name, "reason": reason})
    return f"error: {reason[:_REASON_MAX]}"


async def _in_process() -> str:
    return "ok (in-process)"


async def metrics(request: Request) -> Response:
    """The process's metrics in Prometheus text format."""
    services: Services = request.app.state.services
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
