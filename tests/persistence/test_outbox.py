"""outbox.Pending: a transaction's events (and its command's reply) are written together, in order; only written
events go out."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from persistence import command_log, outbox
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


async def test_a_logged_reply_and_the_events_are_written_together_in_one_statement_on_postgresql(
    db: Database, backend: str
) -> None:
    """The command log row and the events, in emission order with their ids; one statement on PostgreSQL."""
    events = outbox.Pending()
    events.log(command_log.Entry("device:1", "c1", "thing.do", {"ok": True, "data": {"n": 1}}))
    for n in range(3):
        events.emit("device:1", "thing.happened", {"n": n})
    statements = []
    async with db.session() as session:
        counting = (await session.connection()).sync_connection
        assert counting is not None
        event.listen(counting, "before_cursor_execute", lambda *args: statements.append(args[2]))
        await events.write(session)
    # SQLite: the log row, then one INSERT per event (the only way it gives ids in a known order).
    assert len(statements) == (1 if backend == "postgresql" else 1 + 3)
    async with db.session() as session:
        stored = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
        reply = await command_log.stored_reply(session, "device:1", "c1")
    assert reply == {"ok": True, "data": {"n": 1}}
    assert [row.data["n"] for row in stored] == [0, 1, 2]
    assert [(row.id, row.event_id) for row in events.written] == [(row.id, row.event_id) for row in stored]


async def test_a_reply_logged_twice_writes_none_of_the_second_transactions_events(db: Database) -> None:
    """The log's key refuses a retried command id, and its events go with it: the retry changes nothing."""
    first = outbox.Pending()
    first.log(command_log.Entry("device:1", "c1", "thing.do", {"ok": True}))
    first.emit("device:1", "thing.happened", {"n": 1})
    async with db.session() as session:
        await first.write(session)
    retry = outbox.Pending()
    retry.log(command_log.Entry("device:1", "c1", "thing.do", {"ok": True, "data": "other"}))
    retry.emit("device:1", "thing.happened", {"n": 2})
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await retry.write(session)
    async with db.session() as session:
        stored = (await session.scalars(select(OutboxEvent))).all()
        reply = await command_log.stored_reply(session, "device:1", "c1")
    assert [row.data for row in stored] == [{"n": 1}]
    assert reply == {"ok": True}


async def test_a_transaction_logs_one_reply_before_its_write() -> None:
    """A second reply, or one after the write, would be a reply the log never keeps: both raise."""
    events = outbox.Pending()
    events.log(command_log.Entry("device:1", "c1", "thing.do", {"ok": True}))
    with pytest.raises(RuntimeError, match="one reply"):
        events.log(command_log.Entry("device:1", "c1", "thing.do", {"ok": True}))


@pytest.mark.parametrize("count", [1, 2, 5])
def test_the_one_statement_write_is_compiled_once(count: int) -> None:
    """Compiling it for every command would cost more than the round trip it saves (SQLAlchemy never caches the
    compiled SQL of a multi-row INSERT construct, which is why it is text, prepared once per count of events)."""
    dialect = postgresql.asyncpg.dialect()
    statement = outbox._write_with_log(count)
    assert outbox._write_with_log(count) is statement
    assert statement.compiled(dialect) is statement.compiled(dialect)
