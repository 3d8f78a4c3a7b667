"""`create_app()`: the one composition root. Everything the server runs is wired here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from channels.backend import create_backend
from channels.hub import Hub
from channels.relay import Relay
from persistence.base import utcnow
from persistence.database import Database
from server.api import (
    apps,
    asyncapi,
    auth,
    branches,
    categories,
    combos,
    customers,
    dayparts,
    devices,
    docs,
    items,
    orders,
    pairing_codes,
    payment_webhook,
    payments,
    pos_deliveries,
    refunds,
    roles,
    stations,
    stock,
    system,
    tax_categories,
    users,
)
from server.api.routing import ApiRouter, error_response
from server.auth.known_principals import KnownPrincipals
from server.auth.tokens import TokenCodec
from server.commands import command_registry
from server.commands.router import CommandRegistry
from server.errors import ApiError
from server.integrations.payment_gateway import PaymentGateway
from server.observability.http_metrics import MetricsMiddleware
from server.observability.logs import configure_logging
from server.observability.metrics import Metrics
from server.realtime.limits import SocketLimits
from server.realtime.mount import SocketFirstApp
from server.realtime.snapshots import Snapshots
from server.realtime.socket import DeviceSocket
from server.services import Services
from server.settings import Settings
from server.workers.dayparts import DaypartWorker
from server.workers.deadlines import DeadlineWorker
from server.workers.gateway import GatewayWorker
from server.workers.housekeeping import Housekeeping
from server.workers.pos import PosWorker

API_ROUTERS: list[ApiRouter] = [
    auth.router,
    users.router,
    roles.router,
    branches.router,
    devices.router,
    pairing_codes.router,
    stations.router,
    categories.router,
    dayparts.router,
    tax_categories.router,
    items.router,
    combos.router,
    stock.router,
    customers.router,
    orders.router,
    payments.router,
    refunds.router,
    pos_deliveries.router,
    payment_webhook.router,
]

_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "invalid", 429: "rate_limited"}


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and wrong methods answer in the same error shape as everything else.
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid")
    response = error_response(ApiError(code, str(exc.detail)))  # type: ignore[arg-type]
    response.status_code = exc.status_code
    # A 405 names the methods the path takes (`Allow`), as HTTP asks.
    response.headers.update(exc.headers or {})
    return response


def build_services(
    settings: Settings,
    *,
    db: Database | None = None,
    redis: Redis | None = None,
    prefix: str = "kiosk",
    clock: Callable[[], datetime] = utcnow,
) -> Services:
    """The services for `settings`; tests pass their own database, Redis client (shared, not closed), key prefix or
    business clock (`Services.clock`)."""
    db = db or Database.from_url(settings.database_url, pool_size=settings.DATABASE_POOL_SIZE)
    backend = create_backend(
        settings.REDIS_URL,
        history_size=settings.HISTORY_SIZE,
        history_ttl_s=settings.HISTORY_TTL_S,
        prefix=prefix,
        redis=redis,
    )
    snapshots = Snapshots(db, backend.presence, settings, clock)
    hub = Hub(backend.broker, snapshots.snapshot, max_replay=settings.WS_MAX_REPLAY)
    relay = Relay(db, backend.broker)
    metrics = Metrics(db)
    metrics.watch_realtime(hub, relay)
    gateway = (
        PaymentGateway(settings.PAYMENT_API_URL, settings.PAYMENT_API_KEY or "") if settings.PAYMENT_API_URL else None
    )
    return Services(
        settings=settings,
        db=db,
        tokens=TokenCodec(settings),
        principals=KnownPrincipals(db, backend.broker, ttl_s=settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60),
        backend=backend,
        metrics=metrics,
        hub=hub,
        relay=relay,
        housekeeping=Housekeeping(db),
        deadlines=DeadlineWorker(db, relay, settings),
        pos=PosWorker(db, settings),
        gateway=gateway,
        gateway_worker=GatewayWorker(db, relay, settings, gateway) if gateway else None,
        dayparts=DaypartWorker(db, relay, clock=clock),
        clock=clock,
    )


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    socket_limits: SocketLimits | None = None,
    commands: CommandRegistry | None = None,
) -> Starlette:
    """The ASGI app, wired here and nowhere else: the services, the device commands and the socket's limits.

    Production builds all three from `settings`; tests pass their own.
    """
    settings = settings or (services.settings if services else Settings())
    configure_logging(settings)
    owned = services is None
    ready = services or build_services(settings)
    commands = commands or command_registry()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ready.start()
        try:
            yield
        finally:
            await (ready.close() if owned else ready.stop())

    prefix = settings.API_V1_STR
    routes: list[BaseRoute] = [
        *system.routes(settings),
        *docs.routes(settings, API_ROUTERS),
        *asyncapi.routes(settings, commands),
        *apps.routes(),
    ]
    for router in API_ROUTERS:
        routes.extend(router.routes(prefix))

    app = SocketFirstApp(
        socket_path=f"{prefix}/ws",
        socket_endpoint=DeviceSocket(ready, commands, socket_limits or SocketLimits.from_settings(settings)),
        debug=settings.DEBUG,
        routes=routes,
        middleware=[
            Middleware(MetricsMiddleware, metrics=ready.metrics),
            Middleware(
                CORSMiddleware,
                allow_origins=settings.ALLOWED_ORIGINS,
                allow_methods=["*"],
                allow_headers=["*"],
                allow_credentials=True,
            ),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.services = ready
    return app
