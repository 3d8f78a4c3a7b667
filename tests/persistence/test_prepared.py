"""Prepared statements run on the driver inside the session's transaction, and read as the session would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from persistence.base import table
from persistence.database import Database
from persistence.enums import DeadlineKind
from persistence.prepared import Prepared, one_of
from persistence.tables import Deadline, Order

_DEADLINES = table(Deadline)
_ADD = Prepared(
    insert(_DEADLINES)
    .values(
        kind=bindparam("kind"),
        ref_id=bindparam("ref_id"),
        due_at=bindparam("due_at"),
    )
    .returning(_DEADLINES.c.id, _DEADLINES.c.kind, _DEADLINES.c.due_at)
)
_READ = Prepared(
    select(_DEADLINES.c.ref_id, _DEADLINES.c.kind, _DEADLINES.c.due_at).where(
        _DEADLINES.c.ref_id == bindparam("ref_id")
    )
)
KOLKATA = timezone(timedelta(hours=5, minutes=30))


async def test_rows_read_back_converted_as_the_session_converts_them(db: Database) -> None:
    """Enums come back as members and timestamps aware in UTC, on both databases; columns by name."""
    due = datetime(2026, 7, 1, 10, 0, tzinfo=KOLKATA)
    async with db.session() as session:
        added = await _ADD.first(session, {"kind": DeadlineKind.PAYMENT, "ref_id": 7, "due_at": due})
    assert added is not None
    assert added.kind is DeadlineKind.PAYMENT
    assert added.due_at == due and added.due_at.tzinfo is UTC

    async with db.session() as session:
        row = await _READ.first(session, {"ref_id": 7})
        through_session = (await session.execute(select(Deadline.ref_id, Deadline.kind, Deadline.due_at))).one()
    assert row is not None
    assert tuple(row) == tuple(through_session)
    assert (row.ref_id, row.kind) == (7, DeadlineKind.PAYMENT)


async def test_runs_in_the_sessions_transaction(db: Database) -> None:
    """A prepared write as the transaction's first statement is rolled back with it; one after a flush sees it."""
    due = datetime(2026, 7, 1, tzinfo=UTC)
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await _ADD.execute(session, {"kind": DeadlineKind.PAYMENT, "ref_id": 1, "due_at": due})
            raise RuntimeError("roll back")
    async with db.session() as session:
        session.add(Deadline(kind=DeadlineKind.PAYMENT, ref_id=2, due_at=due))
        await session.flush()
        assert await _READ.scalar(session, {"ref_id": 2}) == 2
    async with db.session() as session:
        assert await _READ.first(session, {"ref_id": 1}) is None
        assert await _READ.scalar(session, {"ref_id": 2}) == 2


async def test_a_constraint_violation_is_sqlalchemys_integrity_error(db: Database) -> None:
    """The router tells a retried command by IntegrityError, whichever way the statement ran."""
    due = datetime(2026, 7, 1, tzinfo=UTC)
    async with db.session() as session:
        first = await _ADD.first(session, {"kind": DeadlineKind.PAYMENT, "ref_id": 1, "due_at": due})
    assert first is not None
    same_id = Prepared(
        insert(_DEADLINES).values(id=bindparam("id"), kind=bindparam("kind"), ref_id=2, due_at=bindparam("due"))
    )
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await same_id.execute(session, {"id": first.id, "kind": DeadlineKind.PAYMENT, "due": due})


async def test_engine_listeners_hear_each_statement(db: Database) -> None:
    """Statement counts and logs see prepared statements as they see the session's."""
    heard: list[str] = []

    def listen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        heard.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        async with db.session() as session:
            await _READ.rows(session, {"ref_id": 1})
            await _READ.rows(session, {"ref_id": 2})
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listen)
    assert [s for s in heard if "deadlines" in s] == [_READ.compiled(db.engine.dialect).sql] * 2


def test_a_statement_that_needs_a_python_default_is_refused(db: Database) -> None:
    """updated_at's onupdate would be left out silently; the statement says so when compiled instead."""
    orders = table(Order)
    missing = Prepared(update(orders).values(cancel_reason=bindparam("reason")))
    with pytest.raises(ValueError, match="updated_at"):
        missing.compiled(db.engine.dialect)
    expanding = Prepared(select(_DEADLINES.c.id).where(_DEADLINES.c.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="IN"):
        expanding.compiled(db.engine.dialect)


async def test_one_of_is_an_in_list_of_fixed_values(db: Database) -> None:
    """one_of() gives IN over fixed values, converted like any parameter."""
    due = datetime(2026, 7, 1, tzinfo=UTC)
    kinds = Prepared(select(_DEADLINES.c.ref_id).where(one_of(_DEADLINES.c.kind, (DeadlineKind.PAYMENT,))))
    async with db.session() as session:
        await _ADD.execute(session, {"kind": DeadlineKind.PAYMENT, "ref_id": 1, "due_at": due})
        await _ADD.execute(session, {"kind": DeadlineKind.ORDER_PAYMENT, "ref_id": 2, "due_at": due})
        assert [row.ref_id for row in await kinds.rows(session)] == [1]


async def test_a_missing_parameter_is_named(db: Database) -> None:
    """A forgotten parameter fails before anything runs, naming it."""
    async with db.session() as session:
        with pytest.raises(ValueError, match="ref_id"):
            await _READ.rows(session, {})
