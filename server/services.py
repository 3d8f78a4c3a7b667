"""The long-lived things one server process holds, built once by `create_app`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from channels.brokers import Broker, create_broker
from channels.frames import encode_data
from channels.hub import Hub
from channels.listener import InstanceListener
from channels.presence import Presence, create_presence
from channels.redis_clients import COMMAND_TIMEOUT_S, redis_client
from channels.relay import Relay
from channels.wire import Coalescer
from persistence.base import rfc3339, utcnow
from persistence.database import Database
from server.auth.rate_limit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
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
    """Settings, database, Redis, broker, hub, relay, presence, background workers, tokens, rate limiter, metrics."""

    settings: Settings
    db: Database
    tokens: TokenCodec
    redis: Redis | None
    rate_limiter: RateLimiter
    metrics: Metrics
    broker: Broker
    hub: Hub
    relay: Relay
    presence: Presence
    housekeeping: Housekeeping
    deadlines: DeadlineWorker
    pos: PosWorker
    # The payment API client and the loop that charges through it, when PAYMENT_API_URL is set.
    gateway: Refunder | None = None
    gateway_worker: GatewayWorker | None = None
    # Every socket's frames of one event-loop turn, written together (channels/wire.py).
    frames_out: Coalescer = field(default_factory=Coalescer)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        db: Database | None = None,
        redis: Redis | None = None,
        prefix: str = "kiosk",
    ) -> Services:
        """Services for `settings`; tests pass their own database, Redis client or key prefix."""
        db = db or Database.from_url(settings.database_url)
        if redis is None and settings.REDIS_URL:
            redis = redis_client(settings.REDIS_URL, wait_s=COMMAND_TIMEOUT_S, health_check_interval=30)
        limiter: RateLimiter = (
            RedisRateLimiter(redis, prefix=f"{prefix}:ratelimit") if redis is not None else MemoryRateLimiter()
        )
        broker = create_broker(
            settings.REDIS_URL,
            history_size=settings.HISTORY_SIZE,
            history_ttl_s=settings.HISTORY_TTL_S,
            prefix=prefix,
        )

        async def announce(channel: str, event: str, data: dict[str, Any]) -> None:
            # Presence is not state of the database: it goes to the broker directly, not through the outbox.
            await broker.publish(channel, str(uuid.uuid4()), event, encode_data(data), rfc3339(utcnow()))

        presence = create_presence(settings.REDIS_URL, announce, prefix=prefix)
        snapshots = Snapshots(db, presence, settings)
        hub = Hub(broker, snapshots.snapshot)
        relay = Relay(db, broker)
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
            redis=redis,
            rate_limiter=limiter,
            metrics=metrics,
            broker=broker,
            hub=hub,
            relay=relay,
            presence=presence,
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
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()

    async def send_control(self, message: dict[str, Any]) -> None:
        """Tell every instance, e.g. to close the sockets of a revoked device."""
        await self.broker.send_control(message)
