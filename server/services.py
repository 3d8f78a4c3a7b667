"""The long-lived things one server process holds, built once by `create_app`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from channels.backend import Backend, create_backend
from channels.brokers import Broker
from channels.hub import Hub
from channels.listener import InstanceListener
from channels.presence import Presence
from channels.rate_limit import RateLimiter
from channels.relay import Relay
from channels.wire import Coalescer
from persistence.database import Database
from server.auth.tokens import TokenCodec
from server.integrations.payment_gateway import PaymentGateway
from server.observability.metrics import Metrics
from server.orders.payment_changes import Refunder
from server.realtime.snapshots import Snapshots
from server.settings import Settings
from server.workers.deadlines import DeadlineWorker
from server.workers.gateway import GatewayWorker
from server.workers.housekeeping import Housekeeping
from server.workers.pos import PosWorker


@dataclass
class Services:
    """Settings, database, realtime backend, hub, relay, background workers, tokens, metrics."""

    settings: Settings
    db: Database
    tokens: TokenCodec
    # The broker, presence, rate limiter and their Redis client, as REDIS_URL chose them.
    backend: Backend
    metrics: Metrics
    hub: Hub
    relay: Relay
    housekeeping: Housekeeping
    deadlines: DeadlineWorker
    pos: PosWorker
    # The payment API client and the loop that charges through it, when PAYMENT_API_URL is set.
    gateway: Refunder | None = None
    gateway_worker: GatewayWorker | None = None
    # Every socket's frames of one event-loop turn, written together (channels/wire.py).
    frames_out: Coalescer = field(default_factory=Coalescer)

    @property
    def broker(self) -> Broker:
        """Orders, keeps and fans out every channel's events."""
        return self.backend.broker

    @property
    def presence(self) -> Presence:
        """Which devices are connected, on any instance."""
        return self.backend.presence

    @property
    def rate_limiter(self) -> RateLimiter:
        """Counts login attempts."""
        return self.backend.rate_limiter

    @property
    def redis(self) -> Redis | None:
        """The Redis client the backend shares; None in process."""
        return self.backend.redis

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        db: Database | None = None,
        redis: Redis | None = None,
        prefix: str = "kiosk",
    ) -> Services:
        """Services for `settings`; tests pass their own database, Redis client (shared, not closed) or key prefix."""
        db = db or Database.from_url(settings.database_url)
        backend = create_backend(
            settings.REDIS_URL,
            history_size=settings.HISTORY_SIZE,
            history_ttl_s=settings.HISTORY_TTL_S,
            prefix=prefix,
            redis=redis,
        )
        snapshots = Snapshots(db, backend.presence, settings)
        hub = Hub(backend.broker, snapshots.snapshot)
        relay = Relay(db, backend.broker)
        metrics = Metrics(db)
        metrics.watch_realtime(hub, relay)
        gateway = (
            PaymentGateway(settings.PAYMENT_API_URL, settings.PAYMENT_API_KEY or "")
            if settings.PAYMENT_API_URL
            else None
        )
        return cls(
            settings=settings,
            db=db,
            tokens=TokenCodec(settings),
            backend=backend,
            metrics=metrics,
            hub=hub,
            relay=relay,
            housekeeping=Housekeeping(db),
            deadlines=DeadlineWorker(db, relay, settings),
            pos=PosWorker(db, settings),
            gateway=gateway,
            gateway_worker=GatewayWorker(db, relay, settings, gateway) if gateway else None,
        )

    async def start(self) -> None:
        """Connect the realtime layer (broker deliveries to the hub, outbox relay, presence) and start the workers."""
        await self.broker.start(InstanceListener(self.hub, self.presence))
        await self.presence.start()
        self.relay.start()
        self.housekeeping.start()
        self.deadlines.start()
        self.pos.start()
        if self.gateway_worker is not None:
            self.gateway_worker.start()

    async def stop(self) -> None:
        """Stop the realtime layer's background work (the reverse of `start`)."""
        if self.gateway_worker is not None:
            await self.gateway_worker.close()
        await self.pos.close()
        await self.deadlines.close()
        await self.housekeeping.close()
        await self.relay.close()
        await self.presence.close()
        await self.broker.close()

    async def close(self) -> None:
        """Stop background work and release connections."""
        await self.stop()
        await self.backend.close()
        await self.db.dispose()

    async def send_control(self, message: dict[str, Any]) -> None:
        """Tell every instance, e.g. to close the sockets of a revoked device."""
        await self.broker.send_control(message)
