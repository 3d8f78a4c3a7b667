"""The realtime backend of one process, chosen by one URL: the broker, presence and the login rate limiter.

No URL (unset or empty) keeps all three in this process's memory: one server, nothing to
install. A `redis://`, `rediss://` or `unix://` URL puts all three in Redis over one shared client, so
a process holds one connection pool (plus the broker's one pub/sub connection). A
`redis+cluster://host:port[,host:port...]` URL (`rediss+cluster://` with TLS) puts them in a Redis
Cluster: channels spread over its masters by slot, received with sharded pub/sub (one connection
per master), while presence keeps its keys in one slot (its scripts touch them together). This is
the only place that decides between them; any other scheme is refused at start-up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from channels.brokers.base import Broker
from channels.brokers.memory import MemoryBroker
from channels.brokers.redis import RedisBroker
from channels.brokers.redis_cluster import RedisClusterBroker
from channels.frames import encode_data
from channels.presence import Announce, MemoryPresence, Presence, RedisPresence
from channels.rate_limit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from channels.redis_clients import CLUSTER_SCHEMES, cluster_client, shared_client
from persistence.base import rfc3339, utcnow

REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Backend:
    """A process's broker, presence and rate limiter, and the Redis client they share (None in process)."""

    broker: Broker
    presence: Presence
    rate_limiter: RateLimiter
    redis: Redis | RedisCluster | None
    # Whether `redis` was opened here, and so is closed here; a client passed in belongs to its caller.
    owns_redis: bool = False

    async def close(self) -> None:
        """Close the Redis client if this backend opened it (once the broker and presence have stopped)."""
        if self.redis is not None and self.owns_redis:
            await self.redis.aclose()


def create_backend(
    url: str | None, *, history_size: int, history_ttl_s: int, prefix: str = "kiosk", redis: Redis | None = None
) -> Backend:
    """The backend `url` names: in process for None or "", Redis for `redis://`, `rediss://` or `unix://`,
    a Redis Cluster for `redis+cluster://` or `rediss+cluster://`.

    With Redis, `redis` is the client to share (it must decode responses); without it one is
    opened from `url`. A cluster's client is always opened here. Keys and pub/sub names start
    with `prefix`. Raises ValueError for any other scheme, or for a client given with no Redis URL.
    """
    if not url:
        if redis is not None:
            raise ValueError("a Redis client was given, but the realtime backend URL is not a Redis URL")
        broker: Broker = MemoryBroker(history_size=history_size, history_ttl_s=history_ttl_s)
        return Backend(broker, MemoryPresence(_announcer(broker)), MemoryRateLimiter(), None)
    scheme = urlsplit(url).scheme
    if scheme in CLUSTER_SCHEMES:
        if redis is not None:
            raise ValueError("a Redis client was given, but the realtime backend URL names a Redis Cluster")
        return _cluster_backend(url, history_size=history_size, history_ttl_s=history_ttl_s, prefix=prefix)
    if scheme not in REDIS_SCHEMES:
        # The URL itself stays out of the message: it may hold a password.
        got = f"a {scheme}:// URL" if scheme else "a URL without a scheme"
        raise ValueError(
            "REDIS_URL must be a redis://, rediss://, unix://, redis+cluster:// or rediss+cluster:// URL,"
            f" or unset for the in-process backend; got {got}"
        )
    owns_redis = redis is None
    if redis is None:
        redis = shared_client(url)
    elif not redis.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the Redis client to share must decode responses (decode_responses=True)")
    broker = RedisBroker(redis, history_size=history_size, history_ttl_s=history_ttl_s, prefix=prefix)
    presence = RedisPresence(redis, _announcer(broker), prefix=prefix)
    return Backend(broker, presence, RedisRateLimiter(redis, prefix=f"{prefix}:ratelimit"), redis, owns_redis)


def _cluster_backend(url: str, *, history_size: int, history_ttl_s: int, prefix: str) -> Backend:
    """The backend on the Redis Cluster `url` names, over one client this backend owns."""
    cluster = cluster_client(url)
    broker = RedisClusterBroker(cluster, history_size=history_size, history_ttl_s=history_ttl_s, prefix=prefix)
    # The prefix as a hash tag puts every presence key in one slot, where its scripts run.
    presence = RedisPresence(cluster, _announcer(broker), prefix=f"{{{prefix}}}")
    return Backend(broker, presence, RedisRateLimiter(cluster, prefix=f"{prefix}:ratelimit"), cluster, True)


def _announcer(broker: Broker) -> Announce:
    """Presence announcements published on `broker`."""

    async def announce(channel: str, event: str, data: dict[str, Any]) -> None:
        # Presence is not state of the database: it goes to the broker directly, not through the outbox.
        await broker.publish(channel, str(uuid.uuid4()), event, encode_data(data), rfc3339(utcnow()))

    return announce
