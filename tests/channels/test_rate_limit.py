"""Login rate limits: fixed windows counted in one process's memory or shared by every instance through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from channels.rate_limit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from channels.redis_clients import cluster_client
from tests.conftest import REDIS_URL, delete_keys

TIMEOUT_S = 30


@pytest.fixture
async def limiters(
    realtime: tuple[str, str | None], redis_client: Redis
) -> AsyncIterator[tuple[RateLimiter, RateLimiter]]:
    """Two limiters as two instances hold them: one shared store (Redis, a Redis Cluster), or one process's memory."""
    kind, url = realtime
    if kind == "memory":
        shared = MemoryRateLimiter()
        yield shared, shared
        return
    if kind == "cluster":
        assert url is not None
        # Two clients of the session's cluster, which is discarded with its keys.
        one, two, prefix = cluster_client(url), cluster_client(url), f"test:{uuid.uuid4()}"
        yield RedisRateLimiter(one, prefix=prefix), RedisRateLimiter(two, prefix=prefix)
        await one.aclose()
        await two.aclose()
        return
    prefix = f"test:{uuid.uuid4()}"
    other = Redis.from_url(REDIS_URL)
    yield RedisRateLimiter(redis_client, prefix=prefix), RedisRateLimiter(other, prefix=prefix)
    await delete_keys(redis_client, f"{prefix}:*")
    await other.aclose()


async def test_hits_past_the_limit_wait_for_the_window(limiters: tuple[RateLimiter, RateLimiter]) -> None:
    """Hits from either instance add up; past the limit a hit is told how long the window still lasts."""
    one, two = limiters
    async with asyncio.timeout(TIMEOUT_S):
        assert await one.hit("k", 2, 60) is None
        assert await two.hit("k", 2, 60) is None
        wait = await one.hit("k", 2, 60)
    assert wait is not None and 0 < wait <= 60


async def test_a_refund_takes_one_hit_back(limiters: tuple[RateLimiter, RateLimiter]) -> None:
    """A refunded hit (a success) no longer counts, whichever instance refunds it."""
    one, two = limiters
    async with asyncio.timeout(TIMEOUT_S):
        assert await one.hit("k", 1, 60) is None
        await two.refund("k")
        assert await one.hit("k", 1, 60) is None
        assert await two.hit("k", 1, 60) is not None


async def test_a_refund_of_no_window_leaves_nothing_behind(limiters: tuple[RateLimiter, RateLimiter]) -> None:
    """Refunding a key whose window has ended (or never opened) does not bank a spare hit."""
    one, two = limiters
    async with asyncio.timeout(TIMEOUT_S):
        await one.refund("k")
        await two.refund("k")
        assert await one.hit("k", 1, 60) is None
        assert await two.hit("k", 1, 60) is not None


async def test_a_redis_refund_never_leaves_a_key_without_expiry(redis_client: Redis) -> None:
    """A refund after the window expired must not create a counter that lives for ever."""
    prefix = f"test:{uuid.uuid4()}"
    limiter = RedisRateLimiter(redis_client, prefix=prefix)
    async with asyncio.timeout(TIMEOUT_S):
        await limiter.refund("gone")
        assert await redis_client.exists(f"{prefix}:gone") == 0
        assert await limiter.hit("here", 5, 60) is None
        await limiter.refund("here")
        assert 0 < await redis_client.ttl(f"{prefix}:here") <= 60
        await redis_client.delete(f"{prefix}:here")
