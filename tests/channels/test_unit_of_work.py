"""The unit of work (channels/unit_of_work.py): a committed block's events reach the outbox and the broker, in
order; a block that raises, or whose commit fails, writes and publishes nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from channels import names
from channels.brokers import Broker
from channels.unit_of_work import UnitOfWork
from persistence import command_log
from persistence.database import Database
from persistence.tables import Branch, OutboxEvent
from server.services import Services

# Every await of a test is bounded by this, so a hang fails the test instead of the suite.
LIMIT_S = 10
CHANNEL = names.branch_kitchen(1)


def _branch(name: str, tax_rate_bp: int = 0) -> Branch:
    return Branch(name=name, currency="EUR", timezone="Europe/Berlin", tax_rate_bp=tax_rate_bp)


async def _published(broker: Broker) -> list[tuple[int, str, int]]:
    """(seq, event, data n) of every event CHANNEL's history holds, in order."""
    _, epoch = await asyncio.wait_for(broker.position(CHANNEL), LIMIT_S)
    history = await asyncio.wait_for(broker.history(CHANNEL, 0, epoch), LIMIT_S)
    assert history is not None
    frames = [(delivery.seq, json.loads(delivery.frame)) for delivery in history]
    return [(seq, frame["event"], frame["data"]["n"]) for seq, frame in frames]


async def _stored(db: Database) -> tuple[list[str], list[int]]:
    """The branch names and the outbox rows' data n, in the order they were written."""
    async with db.session() as session:
        branches = (await session.scalars(select(Branch.name).order_by(Branch.id))).all()
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return list(branches), [row.data["n"] for row in rows]


async def test_a_committed_block_writes_its_events_and_publishes_them_after_the_commit(services: Services) -> None:
    """The change and the events commit together; the events reach the broker in order only once the block ends."""
    async with UnitOfWork(services.db, services.relay) as uow:
        uow.session.add(_branch("North"))
        uow.emit(CHANNEL, "thing.happened", {"n": 1})
        uow.emit(CHANNEL, "thing.happened", {"n": 2})
        assert await _published(services.broker) == [], "published before the commit"
    assert await _stored(services.db) == (["North"], [1, 2])
    assert await _published(services.broker) == [(1, "thing.happened", 1), (2, "thing.happened", 2)]


async def test_a_block_that_raises_writes_nothing_and_publishes_nothing(services: Services) -> None:
    """The exception propagates; the change and the events are rolled back, and the broker hears nothing."""
    with pytest.raises(RuntimeError, match="refused"):
        async with UnitOfWork(services.db, services.relay) as uow:
            uow.session.add(_branch("North"))
            await uow.session.flush()
            uow.emit(CHANNEL, "thing.happened", {"n": 1})
            raise RuntimeError("refused")
    assert await _stored(services.db) == ([], [])
    assert await _published(services.broker) == []


async def test_a_block_whose_commit_fails_writes_nothing_and_publishes_nothing(services: Services) -> None:
    """A change the database refuses only when the block ends (a check constraint) leaves no event behind."""
    with pytest.raises(IntegrityError):
        async with UnitOfWork(services.db, services.relay) as uow:
            uow.session.add(_branch("North", tax_rate_bp=-1))
            uow.emit(CHANNEL, "thing.happened", {"n": 1})
    assert await _stored(services.db) == ([], [])
    assert await _published(services.broker) == []


async def test_the_session_exists_only_inside_the_block_and_a_unit_is_used_once(services: Services) -> None:
    """Outside its block a unit has no session, and it cannot be entered a second time."""
    unit = UnitOfWork(services.db, services.relay)
    with pytest.raises(RuntimeError, match="not open"):
        _ = unit.session
    async with unit:
        assert (await unit.session.scalar(select(func.count()).select_from(Branch))) == 0
    with pytest.raises(RuntimeError, match="not open"):
        _ = unit.session
    with pytest.raises(RuntimeError, match="used once"):
        async with unit:
            pass


async def _published_marks(db: Database) -> list[bool]:
    """Whether each outbox row is marked published, in the order they were written."""
    async with db.session() as session:
        marks = (await session.scalars(select(OutboxEvent.published_at).order_by(OutboxEvent.id))).all()
    return [mark is not None for mark in marks]


async def test_a_commands_transaction_marks_what_earlier_commits_published_without_a_statement_of_its_own(
    services: Services, backend: str
) -> None:
    """Rows published after one command's commit are marked by the next command's transaction: on PostgreSQL within
    its one INSERT, so marking costs neither a round trip nor a transaction; the background marker finds nothing."""
    async with UnitOfWork(services.db, services.relay) as uow:
        uow.log(command_log.Entry("device:1", "c1", "thing.do", {"ok": True}))
        uow.emit(CHANNEL, "thing.happened", {"n": 1})
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's own, to take the write lock at once
            statements.append(statement)

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        async with UnitOfWork(services.db, services.relay) as uow:
            uow.log(command_log.Entry("device:1", "c2", "thing.do", {"ok": True}))
            uow.emit(CHANNEL, "thing.happened", {"n": 2})
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # SQLite: the marks, the log row, then the event; PostgreSQL: all in one.
    assert len(statements) == (1 if backend == "postgresql" else 3)
    assert "UPDATE outbox SET published_at" in statements[0]
    assert await _published_marks(services.db) == [True, False]  # the first by the second; the second waits
    await asyncio.wait_for(services.relay.marked(), LIMIT_S)
    assert await _published_marks(services.db) == [True, True]
    assert await _published(services.broker) == [(1, "thing.happened", 1), (2, "thing.happened", 2)]


async def test_marks_taken_by_a_unit_that_rolls_back_are_made_later(services: Services) -> None:
    """The rolled-back unit's marks go back to the relay, which makes them in the background; nothing is sent twice."""
    async with UnitOfWork(services.db, services.relay) as uow:
        uow.emit(CHANNEL, "thing.happened", {"n": 1})
    with pytest.raises(RuntimeError, match="refused"):
        async with UnitOfWork(services.db, services.relay) as uow:
            uow.emit(CHANNEL, "thing.happened", {"n": 2})
            raise RuntimeError("refused")
    # The relay knows the row is out: a pass meanwhile does not send it again.
    assert await asyncio.wait_for(services.relay.relay_once(), LIMIT_S) == 0
    await asyncio.wait_for(services.relay.marked(), LIMIT_S)
    assert await _published_marks(services.db) == [True]
    assert await _published(services.broker) == [(1, "thing.happened", 1)]
