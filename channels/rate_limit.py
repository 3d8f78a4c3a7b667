"""Fixed-window rate limits (the login limits), in process or shared by every instance through Redis.

A key's window opens at its first hit and lasts `window_s` seconds. A hit counts before
the work it guards is done, so that attempts made at the same moment cannot all slip under
the limit; `refund` takes a hit back once the attempt turns out not to count (a login
that succeeded).
"""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster


class RateLimiter(Protocol):
    """Counts hits of a key in windows of `window_s` seconds."""

    async def hit(self, key: str, limit: int, window_s: int) -> float | None:
        """Count one hit; None while within `limit`, else the seconds until the window ends."""

    async def refund(self, key: str) -> None:
        """Take back one hit of `key` in its current window; nothing when the window has ended."""


class MemoryRateLimiter:
    """Per-process counters, for the embedded single-instance setup."""

    def __init__(self) -> None:
        # key -> (the monotonic time its window ends, hits in it)
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, limit: int, window_s: int) -> float | None:
        """Count one hit of `key`; a key's window opens at its first hit."""
        now = time.monotonic()
        if len(self._windows) > 100_000:
            # Drop finished windows rather than grow without bound under a spray of keys.
            self._windows = {k: v for k, v in self._windows.items() if now < v[0]}
        ends, count = self._windows.get(key, (now, 0))
        if now >= ends:
            ends, count = now + window_s, 0
        self._windows[key] = (ends, count + 1)
        return None if count + 1 <= limit else ends - now

    async def refund(self, key: str) -> None:
        """Take back one hit of `key`, unless its window has ended."""
        ends, count = self._windows.get(key, (0.0, 0))
        if time.monotonic() < ends and count > 0:
            self._windows[key] = (ends, count - 1)


# Decrements only a live counter: a DECR of an expired key would create one without expiry.
_REFUND = """
local count = tonumber(redis.call('get', KEYS[1]))
if count and count > 0 then
  redis.call('decr', KEYS[1])
end
return 0
"""


class RedisRateLimiter:
    """Counters in Redis (or a Redis Cluster: each counter is one key), so a limit holds across every instance."""

    def __init__(self, redis: Redis | RedisCluster, prefix: str = "ratelimit") -> None:
        self._redis = redis
        self._prefix = prefix
        self._refund = redis.register_script(_REFUND)

    async def hit(self, key: str, limit: int, window_s: int) -> float | None:
        """Count one hit of `key`; a key's window opens at its first hit."""
        redis_key = f"{self._prefix}:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(redis_key, 0, ex=window_s, nx=True)
            pipe.incr(redis_key)
            pipe.pttl(redis_key)
            _, count, ttl_ms = await pipe.execute()
        return None if int(count) <= limit else max(int(ttl_ms), 0) / 1000

    async def refund(self, key: str) -> None:
        """Take back one hit of `key`, unless its window has ended (the key expired)."""
        await self._refund(keys=[f"{self._prefix}:{key}"])
