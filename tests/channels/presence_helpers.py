"""What the presence tests share: the announcements an instance made, and a fleet of presence instances of
one backend, with a TTL short enough to expire within a test.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from channels.presence import Announce, MemoryPresence, Presence, RedisPresence
from channels.redis_clients import cluster_client, shared_client
from tests.conftest import REDIS_URL, delete_keys

TIMEOUT_S = 10
# Small, so that a connection expires within a test; the refresh stays well inside the TTL, by more than the event
# loop of a loaded two-core machine stalls (0.3 s of margin once let a live connection expire).
TTL_S = 1.2
REFRESH_S = 0.3


class Heard:
    """The announcements one presence instance made, in order."""

    def __init__(self) -> None:
        self.announcements: list[tuple[str, str, dict[str, Any]]] = []
        self._arrived = asyncio.Event()

    async def __call__(self, channel: str, event: str, data: dict[str, Any]) -> None:
        self.announcements.append((channel, event, data))
        self._arrived.set()

    async def until(self, count: int) -> None:
        """Wait until `count` announcements have been made (the caller's timeout bounds it)."""
        while len(self.announcements) < count:
            self._arrived.clear()
            await self._arrived.wait()

    def events(self) -> list[tuple[str, int]]:
        """Each announcement as (event, device id)."""
        return [(event, data["device_id"]) for _, event, data in self.announcements]


class Fleet:
    """Presence instances of one backend sharing a fresh Redis key prefix; all closed and cleaned after the test."""

    def __init__(self, kind: str, url: str | None = REDIS_URL) -> None:
        self.kind = kind
        self.url = url
        # On a cluster the prefix is a hash tag, as channels/backend.py makes it, so presence keys share a slot.
        self.prefix = f"{{test:{uuid.uuid4()}}}" if kind == "cluster" else f"test:{uuid.uuid4()}"
        self.running: list[Presence] = []
        self._clients: list[Redis | RedisCluster] = []

    def instance(self, announce: Heard | None = None) -> tuple[Presence, Heard]:
        """A new "server instance" and what it announces."""
        heard = announce or Heard()
        return self.presence(heard), heard

    def presence(self, announce: Announce, url: str = REDIS_URL) -> Presence:
        """A new instance of this backend announcing through `announce`; with Redis, on a client of its own."""
        presence: Presence
        if self.kind == "cluster":
            assert self.url is not None
            cluster = cluster_client(self.url)
            self._clients.append(cluster)
            presence = RedisPresence(cluster, announce, refresh_s=REFRESH_S, ttl_s=TTL_S, prefix=self.prefix)
        elif self.kind == "redis":
            client = shared_client(url)
            self._clients.append(client)
            presence = RedisPresence(client, announce, refresh_s=REFRESH_S, ttl_s=TTL_S, prefix=self.prefix)
        else:
            presence = MemoryPresence(announce)
        self.running.append(presence)
        return presence

    def redis_instance(self, announce: Heard | None = None) -> tuple[RedisPresence, Heard]:
        """A new Redis-backed instance, for tests that drive its refresh and sweep by hand."""
        presence, heard = self.instance(announce)
        assert isinstance(presence, RedisPresence)
        return presence, heard

    async def close(self, presence: Presence) -> None:
        """Shut one instance down cleanly."""
        self.running.remove(presence)
        await presence.close()

    async def crash(self, presence: RedisPresence) -> None:
        """Stop an instance as SIGKILL would: its loop dies and its connections stay in Redis, unrefreshed."""
        assert presence._task is not None
        self.running.remove(presence)
        presence._task.cancel()
        await asyncio.wait([presence._task])
        await presence._redis.aclose()

    async def close_all(self) -> None:
        """Close every instance still running and its Redis client, then drop the test's Redis keys."""
        for presence in list(self.running):
            await self.close(presence)
        for client in self._clients:
            await client.aclose()
        if self.kind == "redis":
            redis = Redis.from_url(REDIS_URL)
            try:
                await delete_keys(redis, f"{self.prefix}:*")
            finally:
                await redis.aclose()
