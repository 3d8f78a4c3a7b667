"""Presence shared by Redis instances: state seen by each, kept past the TTL while an instance runs, and
the devices of a crashed or stalled instance swept offline once, also across a Redis outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.exceptions import RedisError

from channels.presence import RedisPresence
from channels.redis_clients import shared_client
from tests.channels.presence_helpers import REFRESH_S, TIMEOUT_S, TTL_S, Fleet, Heard
from tests.conftest import REDIS_URL


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
async def redis_fleet() -> AsyncIterator[Fleet]:
    """Redis presence instances: several "servers" sharing one Redis."""
    built = Fleet("redis")
    yield built
    await asyncio.wait_for(built.close_all(), TIMEOUT_S)


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
