"""Presence: online/offline announcements, branch lists, and instances that share state, crash and sweep."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from channels.presence import Announce, MemoryPresence, Presence, RedisPresence
from channels.redis_clients import cluster_client, shared_client
from tests.conftest import REDIS_URL

TIMEOUT_S = 10
# Small, so that a connection expires within a test; the refresh stays well inside the TTL.
TTL_S = 0.5
REFRESH_S = 0.2


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
                keys = [key async for key in redis.scan_iter(match=f"{self.prefix}:*")]
                if keys:
                    await redis.delete(*keys)
            finally:
                await redis.aclose()


class Outage:
    """A TCP relay to the test Redis that can be cut and restored, to stage a real Redis outage."""

    def __init__(self) -> None:
        self.down = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Listen on a free loopback port; the Redis URL that goes through the relay."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{port}").geturl()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.append(client_writer)
        if self.down:
            client_writer.close()
            return
        target = urlsplit(REDIS_URL)
        redis_reader, redis_writer = await asyncio.open_connection(target.hostname, target.port)
        self._writers.append(redis_writer)
        for source, sink in ((client_reader, redis_writer), (redis_reader, client_writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones."""
        self.down = True
        for writer in self._writers:
            writer.close()

    async def close(self) -> None:
        """Stop listening and drop everything."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def fleet(realtime: tuple[str, str | None]) -> AsyncIterator[Fleet]:
    """Instances of each presence backend in turn (the cluster's keys go with the session's cluster)."""
    built = Fleet(*realtime)
    yield built
    await asyncio.wait_for(built.close_all(), TIMEOUT_S)


@pytest.fixture
async def redis_fleet() -> AsyncIterator[Fleet]:
    """Redis presence instances: several "servers" sharing one Redis."""
    built = Fleet("redis")
    yield built
    await asyncio.wait_for(built.close_all(), TIMEOUT_S)


async def test_first_connection_announces_the_device_online(fleet: Fleet) -> None:
    """A device's first connection makes it online and announces device.online on its branch's devices channel."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.connected(7, 1, "c1")
        assert await presence.is_online(7)
        [(channel, event, data)] = heard.announcements
        assert (channel, event) == ("branch:1:devices", "device.online")
        assert {key: data[key] for key in ("device_id", "branch_id", "online")} == {
            "device_id": 7,
            "branch_id": 1,
            "online": True,
        }
        assert data["at"].endswith("Z")
        assert abs(datetime.fromisoformat(data["at"]) - datetime.now(UTC)) < timedelta(seconds=5)


async def test_second_connection_of_a_device_announces_nothing(fleet: Fleet) -> None:
    """A reconnect overlapping the old socket keeps the device online without a second device.online."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.connected(7, 1, "c1")
        await presence.connected(7, 1, "c2")
        assert heard.events() == [("device.online", 7)]


async def test_closing_one_of_two_connections_keeps_the_device_online(fleet: Fleet) -> None:
    """The old socket of a reconnected device closing announces nothing and leaves the device online."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.connected(7, 1, "c1")
        await presence.connected(7, 1, "c2")
        await presence.disconnected(7, 1, "c1")
        assert await presence.is_online(7)
        assert heard.events() == [("device.online", 7)]


async def test_closing_the_last_connection_announces_the_device_offline(fleet: Fleet) -> None:
    """The device's last connection closing makes it offline and announces device.offline once."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.connected(7, 1, "c1")
        await presence.connected(7, 1, "c2")
        await presence.disconnected(7, 1, "c1")
        await presence.disconnected(7, 1, "c2")
        await presence.disconnected(7, 1, "c2")
        assert not await presence.is_online(7)
        assert heard.events() == [("device.online", 7), ("device.offline", 7)]
        channel, _, data = heard.announcements[-1]
        assert channel == "branch:1:devices"
        assert (data["device_id"], data["branch_id"], data["online"]) == (7, 1, False)


async def test_unknown_devices_are_offline(fleet: Fleet) -> None:
    """A device never connected is offline, its branch lists nobody, and closing an unknown connection is silent."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.disconnected(9, 1, "never")
        assert not await presence.is_online(9)
        assert await presence.online_devices(1) == set()
        assert heard.announcements == []


async def test_online_devices_lists_each_branchs_connected_devices(fleet: Fleet) -> None:
    """The devices snapshot of a branch holds exactly its devices that have a connection."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, _ = fleet.instance()
        await presence.connected(1, 1, "c1")
        await presence.connected(2, 1, "c2")
        await presence.connected(2, 1, "c3")
        await presence.connected(3, 2, "c4")
        await presence.disconnected(1, 1, "c1")
        assert await presence.online_devices(1) == {2}
        assert await presence.online_devices(2) == {3}


async def test_close_announces_this_instances_devices_offline(fleet: Fleet) -> None:
    """A clean shutdown announces offline, on their own branches, the devices whose connections it held."""
    async with asyncio.timeout(TIMEOUT_S):
        presence, heard = fleet.instance()
        await presence.start()
        await presence.connected(7, 1, "c1")
        await presence.connected(7, 1, "c2")
        await presence.connected(8, 2, "c3")
        await fleet.close(presence)
        offline = sorted((channel, data["device_id"]) for channel, event, data in heard.announcements[2:])
        assert offline == [("branch:1:devices", 7), ("branch:2:devices", 8)]
        assert heard.events()[2:] == [("device.offline", 7), ("device.offline", 8)]


async def test_a_failing_announcement_does_not_fail_the_connection(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that cannot publish leaves the device recorded online; the error is logged, not raised."""

    async def broken(channel: str, event: str, data: dict[str, Any]) -> None:
        raise ConnectionError("broker down")

    async with asyncio.timeout(TIMEOUT_S):
        presence = fleet.presence(broken)
        await presence.connected(7, 1, "c1")
        assert await presence.is_online(7)
        assert "could not announce device.online for device 7" in caplog.text


async def test_instances_share_presence(redis_fleet: Fleet) -> None:
    """A device connected on one instance is online on another, and only its last connection anywhere ends that."""
    async with asyncio.timeout(TIMEOUT_S):
        first, heard_first = redis_fleet.instance()
        second, heard_second = redis_fleet.instance()
        await first.connected(7, 1, "c1")
        assert await second.is_online(7)
        assert await second.online_devices(1) == {7}
        await second.connected(7, 1, "c2")
        await first.disconnected(7, 1, "c1")
        assert await second.is_online(7)
        await second.disconnected(7, 1, "c2")
        assert not await first.is_online(7)
        assert heard_first.events() == [("device.online", 7)]
        assert heard_second.events() == [("device.offline", 7)]


async def test_a_running_instance_keeps_its_devices_online_past_the_ttl(redis_fleet: Fleet) -> None:
    """Refreshing keeps a live instance's connections from expiring: no sweep takes them."""
    async with asyncio.timeout(TIMEOUT_S):
        holder, heard_holder = redis_fleet.instance()
        observer, heard_observer = redis_fleet.instance()
        await holder.start()
        await observer.start()
        await holder.connected(7, 1, "c1")
        await asyncio.sleep(3 * TTL_S)
        assert await observer.is_online(7)
        assert heard_holder.events() == [("device.online", 7)]
        assert heard_observer.events() == []


async def test_a_crashed_instances_devices_are_announced_offline_once(redis_fleet: Fleet) -> None:
    """A killed instance's device goes offline after about the TTL, announced once by a surviving instance."""
    async with asyncio.timeout(TIMEOUT_S):
        doomed, _ = redis_fleet.redis_instance()
        survivor, heard = redis_fleet.instance()
        await doomed.start()
        await survivor.start()
        await doomed.connected(7, 1, "c1")
        await redis_fleet.crash(doomed)
        crashed_at = asyncio.get_running_loop().time()
        assert await survivor.is_online(7)
        await heard.until(1)
        # Expiry comes at most TTL_S after the last refresh, and a sweep within a refresh period after that.
        assert asyncio.get_running_loop().time() - crashed_at < TTL_S + 3 * REFRESH_S
        assert not await survivor.is_online(7)
        await asyncio.sleep(3 * REFRESH_S)
        assert heard.events() == [("device.offline", 7)]
        assert heard.announcements[0][0] == "branch:1:devices"


async def test_concurrent_sweeps_announce_a_device_offline_once(redis_fleet: Fleet) -> None:
    """Two instances sweeping the same expired connections at once announce each device offline only once."""
    async with asyncio.timeout(TIMEOUT_S):
        # Never started, so never refreshed: as if killed right after its devices connected.
        doomed, _ = redis_fleet.instance()
        await doomed.connected(7, 1, "c1")
        await doomed.connected(7, 1, "c2")
        await doomed.connected(8, 1, "c3")
        await asyncio.sleep(TTL_S + 0.1)
        shared = Heard()
        sweepers = [redis_fleet.redis_instance(shared)[0] for _ in range(2)]
        swept = await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))
        assert sorted(swept) == [False, True]
        # Once the sweep lock has lapsed, sweeping again finds nothing left to announce.
        await asyncio.sleep(REFRESH_S)
        assert await sweepers[0].sweep()
        assert sorted(shared.events()) == [("device.offline", 7), ("device.offline", 8)]


async def test_reconnecting_before_the_sweep_announces_offline_then_online(redis_fleet: Fleet) -> None:
    """A device whose instance died, back on another before any sweep, is announced offline then online, once each."""
    async with asyncio.timeout(TIMEOUT_S):
        doomed, _ = redis_fleet.instance()
        survivor, heard = redis_fleet.redis_instance()
        await doomed.connected(7, 1, "c1")
        await asyncio.sleep(TTL_S + 0.1)
        assert not await survivor.is_online(7)
        await survivor.connected(7, 1, "c2")
        assert await survivor.sweep()
        assert heard.events() == [("device.offline", 7), ("device.online", 7)]
        assert await survivor.is_online(7)


async def test_an_instance_back_from_a_stall_brings_its_swept_devices_online_again(redis_fleet: Fleet) -> None:
    """An instance that stalled past the TTL and was swept registers its open connections again on its next refresh."""
    async with asyncio.timeout(TIMEOUT_S):
        stalled, heard_stalled = redis_fleet.redis_instance()
        sweeper, heard_sweeper = redis_fleet.redis_instance()
        await stalled.connected(7, 1, "c1")
        await asyncio.sleep(TTL_S + 0.1)
        assert await sweeper.sweep()
        await stalled.refresh()
        assert await sweeper.is_online(7)
        assert heard_sweeper.events() == [("device.offline", 7)]
        assert heard_stalled.events() == [("device.online", 7), ("device.online", 7)]


async def test_a_connection_made_during_a_redis_outage_is_registered_once_redis_is_back(redis_fleet: Fleet) -> None:
    """connected() raises while Redis is unreachable, and the next refresh registers and announces the device."""
    outage = Outage()
    try:
        async with asyncio.timeout(TIMEOUT_S):
            heard = Heard()
            url = await outage.start()
            presence = redis_fleet.presence(heard, url)
            observer, _ = redis_fleet.instance()
            outage.cut()
            with pytest.raises(RedisError):
                await presence.connected(7, 1, "c1")
            outage.down = False
            assert not await observer.is_online(7)
            await presence.refresh()
            assert await observer.is_online(7)
            assert heard.events() == [("device.online", 7)]
            await redis_fleet.close(presence)
    finally:
        await asyncio.wait_for(outage.close(), TIMEOUT_S)


def test_the_ttl_must_outlast_the_refresh_period() -> None:
    """A TTL no longer than the refresh period would let live connections expire, so it is refused."""
    with pytest.raises(ValueError, match="refresh_s < ttl_s"):
        RedisPresence(shared_client(REDIS_URL), Heard(), refresh_s=5, ttl_s=5, prefix="unused")
