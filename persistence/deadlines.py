"""Stored deadlines: set in the transaction that starts the wait, claimed by whichever instance finds them due."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CTE, Update, bindparam, null, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import UTCDateTime, table
from persistence.enums import DeadlineKind
from persistence.prepared import Prepared
from persistence.tables import Deadline

# Prepared once (orders and payments run them on every order): see persistence/prepared.py.
_DEADLINES = table(Deadline)


def _schedule(insert: Callable[..., Any]) -> Prepared:
    # Each database spells ON CONFLICT in its own dialect: one statement for each.
    return Prepared(
        insert(_DEADLINES)
        .values(kind=bindparam("b_kind"), ref_id=bindparam("b_ref_id"), due_at=bindparam("b_due_at"), done_at=null())
        .on_conflict_do_update(
            index_elements=[_DEADLINES.c.kind, _DEADLINES.c.ref_id],
            set_={"due_at": bindparam("b_due_at"), "done_at": null()},
        )
    )


_SCHEDULE = {"postgresql": _schedule(postgresql_insert), "sqlite": _schedule(sqlite_insert)}
_FINISH = Prepared(
    update(_DEADLINES)
    .where(
        _DEADLINES.c.kind == bindparam("b_kind"),
        _DEADLINES.c.ref_id == bindparam("b_ref_id"),
        _DEADLINES.c.done_at.is_(None),
    )
    .values(done_at=bindparam("b_at"))
)


def finished_with(kind: DeadlineKind, written: CTE) -> Update:
    """The deadlines of `kind` of the rows `written` (a data-modifying CTE of the same statement, with their `id`)
    finished at the statement's `done_at`: a part of that statement, on PostgreSQL."""
    return (
        update(_DEADLINES)
        .where(
            _DEADLINES.c.kind == kind,
            _DEADLINES.c.ref_id.in_(select(written.c.id)),
            _DEADLINES.c.done_at.is_(None),
        )
        .values(done_at=bindparam("done_at", type_=UTCDateTime()))
    )


async def schedule(session: AsyncSession, kind: DeadlineKind, ref_id: int, due_at: datetime) -> None:
    """Set (or move) the deadline of `kind` for `ref_id`, open again if it was done."""
    statement = _SCHEDULE[session.get_bind().dialect.name]
    await statement.execute(session, {"b_kind": kind, "b_ref_id": ref_id, "b_due_at": due_at})


async def finish(session: AsyncSession, kind: DeadlineKind, ref_id: int, at: datetime) -> None:
    """Mark the deadline of `kind` for `ref_id` as no longer pending (met, or acted upon)."""
    await _FINISH.execute(session, {"b_kind": kind, "b_ref_id": ref_id, "b_at": at})


async def due(session: AsyncSession, now: datetime, limit: int, *, kinds: Sequence[DeadlineKind]) -> list[int]:
    """The ids of open deadlines of `kinds` due by `now`, earliest first (read, not locked: see `claim`)."""
    statement = (
        select(Deadline.id)
        .where(Deadline.done_at.is_(None), Deadline.due_at <= now, Deadline.kind.in_(kinds))
        .order_by(Deadline.due_at, Deadline.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def claim(session: AsyncSession, deadline_id: int, now: datetime) -> Deadline | None:
    """The deadline, locked for this transaction, if it is still open and due; None when it is not.

    On PostgreSQL a deadline another instance holds is skipped (None), so each deadline is
    handled by one of them; SQLite has a single writer anyway.
    """
    statement = (
        select(Deadline)
        .where(Deadline.id == deadline_id, Deadline.done_at.is_(None), Deadline.due_at <= now)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(statement)).one_or_none()
