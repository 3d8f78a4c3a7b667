"""outbox.Pending: a transaction's events reach the outbox together, in order, and only written ones go out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from persistence import outbox
from persistence.database import Database
from persistence.tables import OutboxEvent


async def test_events_are_written_in_emission_order_with_their_ids(db: Database) -> None:
    """The outbox ids follow the order of emission, and each written event carries its own."""
    events = outbox.Pending()
    for n in range(5):
        events.emit(f"device:{n % 2}", "thing.happened", {"n": n})
    async with db.session() as session:
        await events.write(session)
    async with db.session() as session:
        stored = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    assert [row.data["n"] for row in stored] == [0, 1, 2, 3, 4]
    assert [row.id for row in events.written] == [row.id for row in stored]
    assert [row.event_id for row in events.written] == [row.event_id for row in stored]


async def test_an_event_emitted_after_the_write_or_never_written_is_refused(db: Database) -> None:
    """Either would publish an event that is not in the outbox: both raise instead."""
    unwritten = outbox.Pending()
    unwritten.emit("device:1", "thing.happened", {})
    with pytest.raises(RuntimeError, match="never written"):
        _ = unwritten.written

    late = outbox.Pending()
    async with db.session() as session:
        await late.write(session)
        with pytest.raises(RuntimeError, match="after"):
            late.emit("device:1", "thing.happened", {})
        with pytest.raises(RuntimeError, match="written already"):
            await late.write(session)
    assert late.written == []
