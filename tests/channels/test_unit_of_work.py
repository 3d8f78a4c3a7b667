"""The unit of work (channels/unit_of_work.py): a committed block's events reach the outbox and the broker, in
order; a block that raises, or whose commit fails, writes and publishes nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from channels import names
from channels.brokers import Broker
from channels.unit_of_work import UnitOfWork
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
