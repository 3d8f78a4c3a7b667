"""Fixtures of the broker tests (a key prefix of the test's own, and brokers of each kind) and of the hub's tests
(a hub over a fake broker and snapshot source, tests/channels/hub_fakes.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from channels.hub import Hub
from tests.channels.broker_helpers import LIMIT_S, Brokers
from tests.channels.hub_fakes import MAX_REPLAY, FakeBroker, Snapshots
from tests.conftest import REDIS_URL, delete_keys


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4()}"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    try:
        async with asyncio.timeout(LIMIT_S):
            await delete_keys(redis, f"{prefix}:*")
    finally:
        await redis.aclose()


@pytest.fixture
async def brokers(realtime: tuple[str, str | None], prefix: str) -> AsyncIterator[Brokers]:
    """Brokers of each backend in turn."""
    opened = Brokers(*realtime, prefix)
    yield opened
    await opened.close_all()


@pytest.fixture
async def redis_brokers(prefix: str) -> AsyncIterator[Brokers]:
    """Redis brokers only, for what the in-process broker cannot have."""
    opened = Brokers("redis", REDIS_URL, prefix)
    yield opened
    await opened.close_all()


@pytest.fixture
def broker() -> FakeBroker:
    """A fresh fake broker."""
    return FakeBroker()


@pytest.fixture
def snapshots() -> Snapshots:
    """A fresh snapshot source."""
    return Snapshots()


@pytest.fixture
def hub(broker: FakeBroker, snapshots: Snapshots) -> Hub:
    """A hub over the fake broker, replaying at most MAX_REPLAY missed events."""
    return Hub(broker, snapshots, max_replay=MAX_REPLAY)
