"""The long-lived things one server process holds, built once by `build_services` (server/app.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from channels.backend import Backend
from channels.brokers import Broker
from channels.hub import Hub
from channels.listener import InstanceListener
from channels.presence import Presence
from channels.rate_limit import RateLimiter
from channels.relay import Relay
from channels.wire import Coalescer
from persistence.base import utcnow
from persistence.database import Database
from server.auth.known_principals import KnownPrincipals
from server.auth.tokens import TokenCodec
from server.observability.metrics import Metrics
from server.orders.payment_changes import Refunder
from server.settings import Settings
from server.workers.dayparts import DaypartWorker
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
    # Who a socket's token names, pinned in the broker for the reconnects that follow.
    principals: KnownPrincipals
    # The broker, presence, rate limiter and their Redis client, as REDIS_URL chose them.
    backend: Backend
    metrics: Metrics
    hub: Hub
    relay: Relay
    housekeeping: Housekeeping
    deadlines: DeadlineWorker
    pos: PosWorker
    # Announces the items that daypart boundaries make orderable or not.
    dayparts: DaypartWorker
    # The payment API client and the loop that charges through it, when PAYMENT_API_URL is set.
    gateway: Refunder | None = None
    gateway_worker: GatewayWorker | None = None
    # Every socket's frames of one event-loop turn, written together (channels/wire.py).
    frames_out: Coalescer = field(default_factory=Coalescer)
    # The moment the menu's dayparts are read at (commands' sale checks, menu snapshots, the daypart worker); a test
    # sets the branch's time of day with it. Rows, deadlines and tokens keep the real time, which the workers
    # compare them with.
    clock: Callable[[], datetime] = utcnow
    # What the broker calls on this instance, from `start` on.
    _listener: InstanceListener | None = field(default=None, init=False, repr=False)

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
    def redis(self) -> Redis | RedisCluster | None:
        """The Redis client the backend shares; None in process."""
        return self.backend.redis

    async def start(self) -> None:
        """Connect the realtime layer (broker deliveries to the hub, outbox relay, presence) and start the workers."""
        self._listener = InstanceListener(self.hub, self.presence)
        await self.broker.start(self._listener)
        await self.presence.start()
        self.relay.start()
        self.housekeeping.start()
        self.deadlines.start()
        self.pos.start()
        if self.gateway_worker is not None:
            self.gateway_worker.start()
        self.dayparts.start()

    async def stop(self) -> None:
        """Stop the realtime layer's background work (the reverse of `start`)."""
        await self.dayparts.close()
        if self.gateway_worker is not None:
            await self.gateway_worker.close()
        await self.pos.close()
        await self.deadlines.close()
        await self.housekeeping.close()
        await self.relay.close()
        if self._listener is not None:
            await self._listener.close()
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
