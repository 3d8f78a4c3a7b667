"""The realtime backend one URL chooses: in process, or broker, presence and rate limiter over one Redis client."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.cluster import RedisCluster

from channels import names
from channels.backend import Backend, create_backend
from channels.brokers.base import Delivery
from channels.brokers.memory import MemoryBroker
from channels.brokers.redis import RedisBroker
from channels.brokers.redis_cluster import RedisClusterBroker
from channels.presence import MemoryPresence, RedisPresence
from channels.rate_limit import MemoryRateLimiter, RedisRateLimiter
from channels.redis_clients import pubsub_client
from server.app import create_app
from server.settings import Settings
from tests.conftest import REDIS_URL, delete_keys

LIMIT_S = 10
URLS = {"memory": None, "redis": REDIS_URL}


class Listener:
    """A broker listener that keeps its deliveries for the test to await."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()

    def deliver(self, delivery: Delivery) -> None:
        """Keep a delivery."""
        self.deliveries.put_nowait(delivery)

    def control(self, message: dict[str, Any]) -> None:
        """No test here sends control messages."""

    def reconnected(self) -> None:
        """No test here drops the connection."""


class CountingPool(BlockingConnectionPool):
    """A connection pool that counts the connections it lends: one per command, script call or pipeline."""

    lent = 0

    async def get_connection(self, *args: Any, **options: Any) -> Any:
        self.lent += 1
        return await super().get_connection(*args, **options)


class Backends:
    """Backends opened under one key prefix, each as one server instance would hold it; all closed at the end."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._opened: list[Backend] = []

    def open(self, url: str | None, redis: Redis | None = None) -> Backend:
        """A backend of `url`, closed (broker, presence, then the backend) at teardown."""
        backend = create_backend(url, history_size=100, history_ttl_s=60, prefix=self.prefix, redis=redis)
        self._opened.append(backend)
        return backend

    async def close_all(self) -> None:
        """Stop every backend's broker and presence, then close the backend."""
        opened, self._opened = self._opened, []
        for backend in opened:
            await backend.broker.close()
            await backend.presence.close()
            await backend.close()


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    """Backends under a Redis key prefix of this test alone; its keys are deleted afterwards."""
    opened = Backends(f"test:{uuid.uuid4()}")
    yield opened
    await asyncio.wait_for(opened.close_all(), LIMIT_S)
    redis = Redis.from_url(REDIS_URL)
    try:
        await delete_keys(redis, f"{opened.prefix}:*")
    finally:
        await redis.aclose()


async def connections_named(name: str) -> int:
    """How many connections Redis holds with the client name `name`."""
    observer = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return sum(1 for client in await observer.client_list() if client["name"] == name)
    finally:
        await observer.aclose()


@pytest.mark.parametrize("url", [None, ""])
def test_no_url_keeps_everything_in_process(backends: Backends, url: str | None) -> None:
    """Unset or empty, the broker, presence and rate limiter live in this process, with no Redis client."""
    backend = backends.open(url)
    assert isinstance(backend.broker, MemoryBroker)
    assert isinstance(backend.presence, MemoryPresence)
    assert isinstance(backend.rate_limiter, MemoryRateLimiter)
    assert backend.redis is None


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_a_redis_url_puts_everything_in_redis_over_a_client_that_decodes(backends: Backends, scheme: str) -> None:
    """`redis://` and `rediss://` give the Redis broker, presence and rate limiter, over a client that decodes."""
    backend = backends.open(REDIS_URL.replace("redis", scheme, 1))
    assert isinstance(backend.broker, RedisBroker)
    assert isinstance(backend.presence, RedisPresence)
    assert isinstance(backend.rate_limiter, RedisRateLimiter)
    assert isinstance(backend.redis, Redis)
    assert backend.redis.connection_pool.connection_kwargs["decode_responses"] is True


def test_a_unix_socket_url_puts_everything_in_redis_over_that_socket(backends: Backends) -> None:
    """`unix://` (Redis on a local socket) is Redis too; its pub/sub connection goes over the same socket."""
    backend = backends.open("unix:///run/redis/redis.sock?db=15")
    assert isinstance(backend.broker, RedisBroker)
    assert isinstance(backend.redis, Redis)
    assert backend.redis.connection_pool.connection_class is UnixDomainSocketConnection
    assert pubsub_client(backend.redis, name="test").connection_pool.connection_class is UnixDomainSocketConnection


@pytest.mark.parametrize("scheme", ["redis+cluster", "rediss+cluster"])
def test_a_cluster_url_puts_everything_in_that_redis_cluster(backends: Backends, scheme: str) -> None:
    """`redis+cluster://` lists the cluster's nodes (TLS with `rediss+cluster://`): the cluster broker, presence
    and rate limiter share one cluster client that decodes, with the URL's credentials."""
    backend = backends.open(f"{scheme}://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001")
    assert isinstance(backend.broker, RedisClusterBroker)
    assert isinstance(backend.presence, RedisPresence)
    assert isinstance(backend.rate_limiter, RedisRateLimiter)
    assert isinstance(backend.redis, RedisCluster)
    assert backend.owns_redis
    startup = backend.redis.nodes_manager.startup_nodes
    assert sorted(startup) == ["10.0.0.1:7000", "10.0.0.2:7001"]
    options = next(iter(startup.values())).connection_kwargs
    assert (options["username"], options["password"], options["decode_responses"]) == ("app", "s@cret", True)
    assert (next(iter(startup.values())).connection_class is SSLConnection) == (scheme == "rediss+cluster")


@pytest.mark.parametrize("url", ["redis+cluster://10.0.0.1", "redis+cluster://10.0.0.1:7000,:7001"])
def test_a_cluster_url_without_host_and_port_is_refused(backends: Backends, url: str) -> None:
    """Every node of a cluster URL is host:port."""
    with pytest.raises(ValueError, match="host:port"):
        backends.open(url)


async def test_a_client_with_a_cluster_url_is_refused(backends: Backends) -> None:
    """A cluster's client is the backend's own: a plain Redis client passed in cannot serve it."""
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="Redis Cluster"):
            backends.open("redis+cluster://127.0.0.1:7000", client)
    finally:
        await client.aclose()


@pytest.mark.parametrize("url", ["memcached://cachehost:11211", "http://user:secret@host/0", "127.0.0.1:6379"])
def test_an_unknown_scheme_is_refused_without_showing_the_url(backends: Backends, url: str) -> None:
    """Anything but redis://, rediss://, unix:// or nothing is a clear error that never repeats the URL."""
    with pytest.raises(ValueError, match="REDIS_URL must be a redis://, rediss://, unix://") as refused:
        backends.open(url)
    assert "secret" not in str(refused.value)
    assert "cachehost" not in str(refused.value)


def test_the_app_refuses_to_start_with_an_unknown_scheme() -> None:
    """A mistyped REDIS_URL stops the server at start-up rather than running without shared state."""
    settings = Settings(_env_file=None, ENVIRONMENT="test", REDIS_URL="redis+sentinel://sentinel:26379/0")
    with pytest.raises(ValueError, match="got a redis\\+sentinel:// URL"):
        create_app(settings)


async def test_a_client_that_does_not_decode_is_refused(backends: Backends) -> None:
    """The broker reads frames as text, so a client handing back bytes is refused at once."""
    raw = Redis.from_url(REDIS_URL)
    try:
        with pytest.raises(ValueError, match="decode_responses=True"):
            backends.open(REDIS_URL, raw)
    finally:
        await raw.aclose()


async def test_a_client_without_a_redis_url_is_refused(backends: Backends) -> None:
    """A client given with no Redis URL is a contradiction, not a hint: it is refused."""
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="not a Redis URL"):
            backends.open(None, client)
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_presence_announces_on_the_backends_own_broker(backends: Backends, kind: str) -> None:
    """A device's first connection is published as `device.online` on its branch's devices channel."""
    backend = backends.open(URLS[kind])
    listener = Listener()
    async with asyncio.timeout(LIMIT_S):
        await backend.broker.start(listener)
        await backend.broker.subscribe(names.branch_devices(1))
        await backend.presence.connected(7, 1, "c1")
        delivery = await listener.deliveries.get()
    frame = json.loads(delivery.frame)
    assert (delivery.channel, frame["event"]) == (names.branch_devices(1), "device.online")
    assert (frame["data"]["device_id"], frame["data"]["online"]) == (7, True)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_two_instances_share_state_only_through_redis(backends: Backends, kind: str) -> None:
    """Two backends of one Redis URL see each other's seqs, devices and login counts; in process, nothing."""
    first, second = backends.open(URLS[kind]), backends.open(URLS[kind])
    shared = kind == "redis"
    channel = names.branch_kitchen(1)
    async with asyncio.timeout(LIMIT_S):
        await first.broker.publish(channel, "evt-1", "order.queued", "{}", "2026-11-26T12:00:00.000Z")
        await first.presence.connected(7, 1, "c1")
        assert await first.rate_limiter.hit("login:k", 1, 60) is None
        assert (await second.broker.position(channel))[0] == (1 if shared else 0)
        assert await second.presence.is_online(7) is shared
        assert (await second.rate_limiter.hit("login:k", 1, 60) is not None) is shared


async def test_one_passed_in_client_serves_broker_presence_and_rate_limiter(backends: Backends) -> None:
    """Every command of the three goes through the client the caller passed in."""
    pool = CountingPool.from_url(REDIS_URL, decode_responses=True)
    client = Redis.from_pool(pool)
    try:
        backend = backends.open(REDIS_URL, client)
        assert backend.redis is client
        async with asyncio.timeout(LIMIT_S):
            for use in (
                backend.broker.position(names.branch_menu(1)),
                backend.presence.is_online(7),
                backend.rate_limiter.hit("login:k", 5, 60),
            ):
                lent = pool.lent
                await use
                assert pool.lent > lent
    finally:
        await client.aclose()


async def test_a_passed_in_client_stays_open_and_an_opened_one_is_closed(backends: Backends) -> None:
    """Closing a backend closes the client it opened, never one its caller passed in."""
    passed, opened = f"test:{uuid.uuid4()}", f"test:{uuid.uuid4()}"
    client = Redis.from_url(REDIS_URL, decode_responses=True, client_name=passed)
    try:
        async with asyncio.timeout(LIMIT_S):
            given = backends.open(REDIS_URL, client)
            owned = backends.open(f"{REDIS_URL}?client_name={opened}")
            for backend in (given, owned):
                await backend.rate_limiter.hit("login:k", 5, 60)
            assert (await connections_named(passed), await connections_named(opened)) == (1, 1)
            await backends.close_all()
            assert await connections_named(passed) == 1
            # Redis forgets a closed connection as soon as it reads the close: poll for that moment.
            while await connections_named(opened):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()
