"""Commands through a Redis outage: refused `unavailable`, not remembered, and the terminal online at once after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channels.presence import RedisPresence
from server.services import Services
from server.settings import Settings
from tests.cluster import RedisServer
from tests.live import free_port
from tests.shop import Shop

LIMIT_S = 10


@pytest.fixture
def backend() -> str:
    """PostgreSQL and a Redis of the test's own, which it stops and starts."""
    return "postgresql"


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server on a port of its own, stopped by pid at the end."""
    server = RedisServer(free_port(), tmp_path / "redis.log")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(private_redis: RedisServer) -> Settings:
    """The production-like runtime on the private Redis."""
    return Settings(_env_file=None, ENVIRONMENT="test", REDIS_URL=private_redis.url)


async def test_payment_start_in_a_redis_outage_is_unavailable_and_runs_afresh_after(
    services: Services, shop: Shop, private_redis: RedisServer
) -> None:
    """Without Redis, payment.start answers `unavailable`; once Redis is back (empty), the terminal is online at
    once and the same command id runs and starts the payment."""
    presence = services.presence
    assert isinstance(presence, RedisPresence)
    # Far beyond the test: only the broker's reconnect can bring the terminal back in time.
    presence.refresh_s = 3600
    await services.start()
    await shop.terminal_online()
    order = await shop.placed_order()

    await private_redis.stop()
    refused = await shop.request(shop.kiosk, "payment.start", {"order_id": order["id"]}, command_id="pay-1")
    assert refused["error"]["code"] == "unavailable", refused

    await private_redis.start()
    async with asyncio.timeout(LIMIT_S):
        # Presence is state in Redis, with nothing to wait on but asking.
        while not await _online(presence, shop.terminal.id):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    started = await shop.request(shop.kiosk, "payment.start", {"order_id": order["id"]}, command_id="pay-1")
    assert started["ok"], started
    assert started["data"]["status"] == "pending"


async def _online(presence: RedisPresence, device_id: int) -> bool:
    try:
        return await presence.is_online(device_id)
    except Exception:
        return False  # Redis still coming back
