"""The long-lived things one server process holds, built once by `create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from persistence.database import Database
from server.auth.tokens import TokenCodec
from server.metrics import Metrics
from server.rate_limit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from server.settings import Settings


@dataclass
class Services:
    """Settings, database, Redis (when configured), token codec, rate limiter and metrics."""

    settings: Settings
    db: Database
    tokens: TokenCodec
    redis: Redis | None
    rate_limiter: RateLimiter
    metrics: Metrics

    @classmethod
    def build(cls, settings: Settings, *, db: Database | None = None, redis: Redis | None = None) -> Services:
        """Services for `settings`; tests pass their own database or Redis client."""
        db = db or Database.from_url(settings.database_url)
        if redis is None and settings.REDIS_URL:
            redis = Redis.from_url(settings.REDIS_URL, health_check_interval=30)
        limiter: RateLimiter = RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter()
        return cls(
            settings=settings,
            db=db,
            tokens=TokenCodec(settings),
            redis=redis,
            rate_limiter=limiter,
            metrics=Metrics(db),
        )

    async def close(self) -> None:
        """Release connections."""
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()
