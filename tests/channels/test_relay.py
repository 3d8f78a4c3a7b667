"""The outbox relay (channels/relay.py): rows a failed publish left behind go out later, in outbox order, each
with one seq; on PostgreSQL one relay runs at a time; the lag metric is the oldest waiting event's age; the
loop wakes on a failed publish and stops when closed.

The broker is the backend's real one behind `Flaky`, which can fail or stall chosen publishes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update

from channels import names
from channels import relay as relay_module
from channels.brokers import Broker, BrokerListener, Delivery, Outgoing
from channels.relay import Relay
from persistence import outbox
from persistence.base import utcnow
from persistence.database import Database
from persistence.tables import OutboxEvent
from server.services import Services

# Every await of a test is bounded by this, so a lost event fails the test instead of hanging the suite.
LIMIT_S = 10
CHANNEL = names.branch_kitchen(1)


class Flaky(Broker):
    """A real broker behind a switch: chosen event ids fail once, and publishes can be held back."""

    def __init__(self, inner: Broker) -> None:
        super().__init__(history_size=inner.history_size, history_ttl_s=inner.history_ttl_s)
        self.inner = inner
        # Event ids whose next publish fails (once each).
        self.failing: set[str] = set()
        # When set, every publish waits for it first.
        self.hold: asyncio.Event | None = None
        # Whether a cancellation while held is lost, as redis-py loses some on Python 3.11 (its asyncio.wait_for).
        self.lose_cancellation = False
        self.attempted = asyncio.Event()
        # Event ids handed to the real broker, in order, repeats included; also queued for tests to await.
        self.published: list[str] = []
        self.passed: asyncio.Queue[str] = asyncio.Queue()
        # How many events each `publish_many` call carried.
        self.calls: list[int] = []

    async def publish_many(self, events: Sequence[Outgoing]) -> None:
        """Note the call's size; its events go through `publish` one by one."""
        self.calls.append(len(events))
        await super().publish_many(events)

    async def publish(self, channel: str, event_id: str, event: str, data_json: str, ts: str) -> Delivery:
        """Fail, wait, or pass the publish on to the real broker."""
        self.attempted.set()
        if self.hold is not None:
            try:
                await asyncio.wait_for(self.hold.wait(), LIMIT_S)
            except asyncio.CancelledError:
                if not self.lose_cancellation:
                    raise
        if event_id in self.failing:
            self.failing.discard(event_id)
            raise ConnectionError("the broker is unreachable")
        self.published.append(event_id)
        self.passed.put_nowait(event_id)
        return await self.inner.publish(channel, event_id, event, data_json, ts)

    async def start(self, listener: BrokerListener) -> None:
        """Start the real broker."""
        await self.inner.start(listener)

    async def close(self) -> None:
        """Close the real broker."""
        await self.inner.close()

    async def position(self, channel: str) -> tuple[int, str]:
        """The real broker's position."""
        return await self.inner.position(channel)

    async def history(self, channel: str, after_seq: int, epoch: str) -> list[Delivery] | None:
        """The real broker's history."""
        return await self.inner.history(channel, after_seq, epoch)

    async def pinned(self, channel: str, key: str) -> tuple[str | None, tuple[int, str]]:
        """The real broker's pinned value."""
        return await self.inner.pinned(channel, key)

    async def pin(self, channel: str, at: tuple[int, str], key: str, value: str, ttl_s: int) -> None:
        """Pin on the real broker."""
        await self.inner.pin(channel, at, key, value, ttl_s)

    async def subscribe(self, channel: str) -> None:
        """Subscribe on the real broker."""
        await self.inner.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe on the real broker."""
        await self.inner.unsubscribe(channel)

    async def send_control(self, message: dict[str, Any]) -> None:
        """Send through the real broker."""
        await self.inner.send_control(message)

    async def ping(self) -> None:
        """Ping the real broker."""
        await self.inner.ping()


async def write(db: Database, count: int, *, first: int = 0) -> list[outbox.Event]:
    """Commit `count` events on CHANNEL, numbered from `first` in their data, in one transaction."""
    events = outbox.Pending()
    for n in range(first, first + count):
        events.emit(CHANNEL, "thing.happened", {"n": n})
    async with db.session() as session:
        await events.write(session)
    return events.written


async def published(db: Database) -> list[bool]:
    """Whether each outbox row is marked published, oldest first."""
    async with db.session() as session:
        stamps = (await session.scalars(select(OutboxEvent.published_at).order_by(OutboxEvent.id))).all()
    return [stamp is not None for stamp in stamps]


async def channel_events(broker: Broker) -> list[tuple[int, int]]:
    """(seq, data n) of every event CHANNEL's history holds, in order."""
    _, epoch = await broker.position(CHANNEL)
    history = await broker.history(CHANNEL, 0, epoch)
    assert history is not None
    return [(delivery.seq, json.loads(delivery.frame)["data"]["n"]) for delivery in history]


async def test_rows_a_failed_publish_left_go_out_later_in_order(services: Services) -> None:
    """A publish that fails midway marks nothing; `relay_once` then sends every row in order, seqs 1, 2, 3."""
    broker = Flaky(services.broker)
    relay = Relay(services.db, broker)
    rows = await write(services.db, 3)
    broker.failing.add(rows[1].event_id)
    await relay.publish_committed(rows)
    assert await published(services.db) == [False, False, False]
    # The first row did reach the broker before the second failed.
    assert await channel_events(services.broker) == [(1, 0)]
    assert await asyncio.wait_for(relay.relay_once(), LIMIT_S) == 3
    assert await published(services.db) == [True, True, True]
    # The first row reached the broker twice and kept its seq.
    assert await channel_events(services.broker) == [(1, 0), (2, 1), (3, 2)]
    assert broker.published == [rows[0].event_id, rows[0].event_id, rows[1].event_id, rows[2].event_id]


async def test_a_row_published_twice_keeps_its_first_seq(services: Services) -> None:
    """The relay and the after-commit path both publishing a row give it one seq; the next row gets the next."""
    broker = Flaky(services.broker)
    relay = Relay(services.db, broker)
    [row] = await write(services.db, 1)
    await relay.publish_committed([row])
    await relay.marked()
    # As if the relay had read the row just before the after-commit path marked it.
    async with services.db.session() as session:
        await session.execute(update(OutboxEvent).values(published_at=None))
    assert await asyncio.wait_for(relay.relay_once(), LIMIT_S) == 1
    await relay.publish_committed([row])
    assert broker.published == [row.event_id] * 3
    assert await channel_events(services.broker) == [(1, 0)]
    await relay.publish_committed(await write(services.db, 1, first=1))
    assert await channel_events(services.broker) == [(1, 0), (2, 1)]
    await relay.marked()


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_relays_on_postgresql_take_turns(services: Services) -> None:
    """While one relay works, another finds the advisory lock taken and sends nothing; the lock ends with it."""
    first_broker, second_broker = Flaky(services.broker), Flaky(services.broker)
    first_broker.hold = asyncio.Event()
    first, second = Relay(services.db, first_broker), Relay(services.db, second_broker)
    await write(services.db, 5)
    working = asyncio.create_task(first.relay_once())
    await asyncio.wait_for(first_broker.attempted.wait(), LIMIT_S)
    assert await asyncio.wait_for(second.relay_once(), LIMIT_S) == 0
    first_broker.hold.set()
    assert await asyncio.wait_for(working, LIMIT_S) == 5
    assert (len(first_broker.published), second_broker.published) == (5, [])
    await write(services.db, 1, first=5)
    assert await asyncio.wait_for(second.relay_once(), LIMIT_S) == 1
    assert [seq for seq, _ in await channel_events(services.broker)] == [1, 2, 3, 4, 5, 6]


async def test_lag_is_the_age_of_the_oldest_unpublished_event(services: Services) -> None:
    """No waiting event means 0; otherwise the oldest one's age; published events no longer count."""
    relay = Relay(services.db, services.broker)
    assert await relay.lag_seconds() == 0.0
    older, newer = await write(services.db, 2)
    async with services.db.session() as session:
        for row, age in ((older, 30), (newer, 5)):
            statement = update(OutboxEvent).where(OutboxEvent.id == row.id)
            await session.execute(statement.values(created_at=utcnow() - timedelta(seconds=age)))
    assert 30 <= await relay.lag_seconds() < 30 + LIMIT_S
    await asyncio.wait_for(relay.relay_once(), LIMIT_S)
    assert await relay.lag_seconds() == 0.0


async def test_a_failed_publish_wakes_the_relay_loop(services: Services) -> None:
    """After a publish fails, the loop sends what waits at once rather than after its interval."""
    broker = Flaky(services.broker)
    relay = Relay(services.db, broker, interval_s=60)
    left, committed = await write(services.db, 2)
    broker.failing.update({left.event_id, committed.event_id})
    relay.start()
    try:
        # The loop's first pass fails on the first row; the loop then waits up to 60 s unless woken.
        await asyncio.wait_for(broker.attempted.wait(), LIMIT_S)
        await relay.publish_committed([committed])
        assert await asyncio.wait_for(broker.passed.get(), LIMIT_S) == left.event_id
        assert await asyncio.wait_for(broker.passed.get(), LIMIT_S) == committed.event_id
    finally:
        # Bounded: the cancel can land inside a Redis command, which Python 3.11 may swallow.
        await asyncio.wait_for(relay.close(), LIMIT_S)
    assert await channel_events(services.broker) == [(1, 0), (2, 1)]


async def test_closing_the_loop_survives_a_lost_cancellation(services: Services) -> None:
    """`close` returns even when the broker call it interrupts swallows the cancellation; that pass completes."""
    broker = Flaky(services.broker)
    broker.hold = asyncio.Event()
    broker.lose_cancellation = True
    relay = Relay(services.db, broker, interval_s=60)
    await write(services.db, 1)
    relay.start()
    await asyncio.wait_for(broker.attempted.wait(), LIMIT_S)
    await asyncio.wait_for(relay.close(), LIMIT_S)
    assert await published(services.db) == [True]


async def test_rows_published_after_commit_are_marked_together(services: Services) -> None:
    """Twenty commands' rows published at once are all marked, by far fewer UPDATEs than commands."""
    relay = Relay(services.db, services.broker)
    written = [await write(services.db, 1, first=n) for n in range(20)]
    updates: list[str] = []

    def count_update(*args: Any) -> None:
        if args[2].startswith("UPDATE outbox"):
            updates.append(args[2])

    event.listen(services.db.engine.sync_engine, "before_cursor_execute", count_update)
    try:
        await asyncio.wait_for(asyncio.gather(*(relay.publish_committed(rows) for rows in written)), LIMIT_S)
        await asyncio.wait_for(relay.marked(), LIMIT_S)
    finally:
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", count_update)
    assert await published(services.db) == [True] * 20
    # How many depends on how the publishes' replies spread over loop turns (1 or 2 here); one per command is 20.
    assert 1 <= len(updates) < len(written) // 2
    assert [seq for seq, _ in await channel_events(services.broker)] == list(range(1, 21))


async def test_commands_committing_in_one_turn_of_the_loop_are_published_by_one_call(services: Services) -> None:
    """Three commands' rows handed over in the same turn go out in one broker call, in the order they came, and
    each caller returns once they are out; a command alone in a later turn is a call of its own."""
    broker = Flaky(services.broker)
    relay = Relay(services.db, broker)
    written = [await write(services.db, 2, first=2 * n) for n in range(3)]
    await asyncio.wait_for(asyncio.gather(*(relay.publish_committed(rows) for rows in written)), LIMIT_S)
    assert broker.calls == [6]
    assert await channel_events(services.broker) == [(n + 1, n) for n in range(6)]
    await relay.publish_committed(await write(services.db, 1, first=6))
    assert broker.calls == [6, 1]
    await asyncio.wait_for(relay.marked(), LIMIT_S)
    assert await published(services.db) == [True] * 7


async def test_rows_published_while_closing_are_left_to_the_relay(services: Services) -> None:
    """After close nothing more is marked in the background (the database may be gone); the relay sends them again."""
    relay = Relay(services.db, services.broker)
    await asyncio.wait_for(relay.close(), LIMIT_S)
    [row] = await write(services.db, 1)
    await relay.publish_committed([row])
    await asyncio.wait_for(relay.marked(), LIMIT_S)
    assert await published(services.db) == [False]
    assert await asyncio.wait_for(relay.relay_once(), LIMIT_S) == 1
    assert await published(services.db) == [True]
    assert await channel_events(services.broker) == [(1, 0)]


async def test_closing_gives_up_on_marks_the_database_holds_up(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mark that cannot finish (its row locked; on SQLite, the write turn taken) holds `close` up for
    `_MARK_WAIT_S` only; the row stays unmarked, and the relay sends it again."""
    monkeypatch.setattr(relay_module, "_MARK_WAIT_S", 0.2)
    relay = Relay(services.db, services.broker)
    [row] = await write(services.db, 1)
    loop = asyncio.get_running_loop()
    async with services.db.session() as session:
        await session.execute(select(OutboxEvent.id).where(OutboxEvent.id == row.id).with_for_update())
        await relay.publish_committed([row])
        started = loop.time()
        await asyncio.wait_for(relay.close(), LIMIT_S)
        assert loop.time() - started < 2
    assert await published(services.db) == [False]
    assert await asyncio.wait_for(relay.relay_once(), LIMIT_S) == 1
    assert await published(services.db) == [True]
