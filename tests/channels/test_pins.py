"""Values pinned to a channel's position (channels/brokers/base.py): kept until the channel moves on.

Every backend keeps the same contract; Redis also shares pins between instances and loses
them with the channel's state.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from channels.brokers.base import MAX_PINS
from tests.channels.broker_helpers import KITCHEN, LIMIT_S, MENU, Brokers, evict_keys, publish
from tests.conftest import REDIS_URL

TTL_S = 60


async def test_a_pinned_value_is_read_until_the_channel_publishes(brokers: Brokers) -> None:
    """A value pinned at the channel's position is read back there; the channel's next event makes it stale."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        value, at = await broker.pinned(KITCHEN, "k")
        assert (value, at) == (None, await broker.position(KITCHEN))
        await broker.pin(KITCHEN, at, "k", "v", TTL_S)
        assert await broker.pinned(KITCHEN, "k") == ("v", at)
        assert await broker.pinned(KITCHEN, "other") == (None, at)
        # Another channel's events leave it alone.
        await publish(broker, MENU)
        assert await broker.pinned(KITCHEN, "k") == ("v", at)
        moved = await publish(broker, KITCHEN)
        assert await broker.pinned(KITCHEN, "k") == (None, (moved.seq, moved.epoch))


async def test_a_value_pinned_at_a_past_position_is_never_read(brokers: Brokers) -> None:
    """A pin made from a read that began before the channel's last event stays stale, and drops the newer pins."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        _, before = await broker.pinned(KITCHEN, "k")
        moved = await publish(broker, KITCHEN)
        now = (moved.seq, moved.epoch)
        await broker.pin(KITCHEN, before, "k", "old", TTL_S)
        assert await broker.pinned(KITCHEN, "k") == (None, now)
        await broker.pin(KITCHEN, now, "k", "new", TTL_S)
        await broker.pin(KITCHEN, now, "j", "also", TTL_S)
        assert await broker.pinned(KITCHEN, "k") == ("new", now)
        await broker.pin(KITCHEN, before, "j", "late", TTL_S)
        assert await broker.pinned(KITCHEN, "k") == (None, now)
        assert await broker.pinned(KITCHEN, "j") == (None, now)


async def test_a_pin_of_one_instance_is_read_by_another_and_expires(redis_brokers: Brokers) -> None:
    """Pins live in Redis: every instance reads them, for at most their TTL."""
    async with asyncio.timeout(LIMIT_S):
        a, _ = await redis_brokers.open()
        b, _ = await redis_brokers.open()
        _, at = await a.pinned(KITCHEN, "k")
        await a.pin(KITCHEN, at, "k", "v", TTL_S)
        assert await b.pinned(KITCHEN, "k") == ("v", at)
        redis = Redis.from_url(REDIS_URL)
        try:
            assert 0 < await redis.ttl(f"{redis_brokers.prefix}:pin:{KITCHEN}") <= TTL_S
        finally:
            await redis.aclose()


async def test_a_channel_whose_state_is_lost_loses_its_pins(redis_brokers: Brokers) -> None:
    """When Redis loses the channel's counter (a restart, an eviction), a new epoch begins and no pin is read."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await redis_brokers.open()
        published = await publish(broker, KITCHEN)
        _, at = await broker.pinned(KITCHEN, "k")
        await broker.pin(KITCHEN, at, "k", "v", TTL_S)
        await evict_keys(redis_brokers.prefix, f"ch:{KITCHEN}")
        value, now = await broker.pinned(KITCHEN, "k")
        assert value is None
        assert now[1] != published.epoch


async def test_a_channel_keeps_a_bounded_number_of_pins(brokers: Brokers) -> None:
    """Up to MAX_PINS values are kept at one position; one more drops the others, which are only ever a saving."""
    async with asyncio.timeout(LIMIT_S):
        broker, _ = await brokers.open()
        _, at = await broker.pinned(KITCHEN, "k")
        for n in range(MAX_PINS):
            await broker.pin(KITCHEN, at, f"k{n}", str(n), TTL_S)
        assert [(await broker.pinned(KITCHEN, f"k{n}"))[0] for n in range(MAX_PINS)] == [
            str(n) for n in range(MAX_PINS)
        ]
        await broker.pin(KITCHEN, at, "one more", "x", TTL_S)
        assert await broker.pinned(KITCHEN, "one more") == ("x", at)
        assert await broker.pinned(KITCHEN, "k0") == (None, at)
