"""Brokers of each kind for tests, a listener that records what they deliver, and small helpers."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, TypeVar

from redis.asyncio import Redis

from channels.backend import Backend, create_backend
from channels.brokers import Broker, Delivery
from channels.brokers.redis import RedisBroker
from channels.redis_clients import shared_client
from tests.conftest import REDIS_URL, delete_keys

# Every await of a test is bounded by this, so a lost message fails the test instead of hanging the suite.
LIMIT_S = 10
TS = "2026-11-26T12:00:00.000Z"
KITCHEN = "branch:1:kitchen"
MENU = "branch:1:menu"
DEVICE = "device:7"

BrokerT = TypeVar("BrokerT", bound=Broker)


class Recorder:
    """A broker listener that keeps what it is given for the test to await."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self.controls: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reconnects = 0
        self._reconnected = asyncio.Event()

    def deliver(self, delivery: Delivery) -> None:
        """Keep a delivery."""
        self.deliveries.put_nowait(delivery)

    def control(self, message: dict[str, Any]) -> None:
        """Keep a control message."""
        self.controls.put_nowait(message)

    def reconnected(self) -> None:
        """Count a reconnect."""
        self.reconnects += 1
        self._reconnected.set()

    async def next_delivery(self) -> Delivery:
        """The next delivery, failing the test if none comes."""
        return await asyncio.wait_for(self.deliveries.get(), LIMIT_S)

    async def wait_reconnected(self) -> None:
        """Return once the broker has reported a reconnect."""
        await asyncio.wait_for(self._reconnected.wait(), LIMIT_S)


class Brokers:
    """Opens started brokers of one kind under one prefix and closes them all at teardown."""

    def __init__(self, kind: str, url: str | None, prefix: str) -> None:
        self.kind = kind
        self.prefix = prefix
        # The backend URL of the kind: None in process.
        self.url = url
        self._opened: list[Broker] = []
        self._clients: list[Redis] = []
        self._backends: list[Backend] = []

    async def open(self, *, history_size: int = 100, history_ttl_s: int = 60) -> tuple[Broker, Recorder]:
        """A started broker of this kind (built by `create_backend`, as the app does) and its listener."""
        backend = create_backend(self.url, history_size=history_size, history_ttl_s=history_ttl_s, prefix=self.prefix)
        self._backends.append(backend)
        return await self._start(backend.broker)

    async def open_redis(self, url: str = REDIS_URL, *, idle_ping_s: float = 5.0) -> tuple[RedisBroker, Recorder]:
        """A started Redis broker on `url` (a proxy, say) with its own ping interval."""
        client = shared_client(url)
        self._clients.append(client)
        broker = RedisBroker(client, history_size=100, history_ttl_s=60, prefix=self.prefix, idle_ping_s=idle_ping_s)
        return await self._start(broker)

    async def _start(self, broker: BrokerT) -> tuple[BrokerT, Recorder]:
        recorder = Recorder()
        self._opened.append(broker)
        await asyncio.wait_for(broker.start(recorder), LIMIT_S)
        return broker, recorder

    async def close_all(self) -> None:
        """Close every broker opened, then the Redis clients they ran on."""
        for broker in self._opened:
            await asyncio.wait_for(broker.close(), LIMIT_S)
        for backend in self._backends:
            await asyncio.wait_for(backend.close(), LIMIT_S)
        for client in self._clients:
            await asyncio.wait_for(client.aclose(), LIMIT_S)


async def publish(broker: Broker, channel: str = KITCHEN, event: str = "order.queued", **data: Any) -> Delivery:
    """Publish one event with a fresh event id."""
    return await broker.publish(channel, str(uuid.uuid4()), event, json.dumps(data), TS)


async def evict_keys(prefix: str, pattern: str) -> None:
    """Delete the keys `{prefix}:{pattern}`, as a Redis restart or an eviction would."""
    redis = Redis.from_url(REDIS_URL)
    try:
        assert await delete_keys(redis, f"{prefix}:{pattern}")
    finally:
        await redis.aclose()
