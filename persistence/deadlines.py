"""Stored deadlines: set in the transaction that starts the wait, claimed by whichever instance finds them due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.enums import DeadlineKind
from persistence.tables import Deadline


async def schedule(session: AsyncSession, kind: DeadlineKind, ref_id: int, due_at: datetime) -> None:
    """Set (or move) the deadline of `kind` for `ref_id`, open again if it was done."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(Deadline)
        .values(kind=kind, ref_id=ref_id, due_at=due_at, done_at=None)
        .on_conflict_do_update(
            index_elements=[Deadline.kind, Deadline.ref_id], set_={"due_at": due_at, "done_at": None}
        )
    )
    await session.execute(statement)


async def finish(session: AsyncSession, kind: DeadlineKind, ref_id: int, at: datetime) -> None:
    """Mark the deadline of `kind` for `ref_id` as no longer pending (met, or acted upon)."""
    await session.execute(
        update(Deadline)
        .where(Deadline.kind == kind, Deadline.ref_id == ref_id, Deadline.done_at.is_(None))
        .values(done_at=at),
        execution_options={"synchronize_session": False},
    )


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, *, kinds: Sequence[DeadlineKind]
) -> Sequence[Deadline]:
    """Open deadlines of `kinds` due by `now`, earliest first, locked for this transaction.

    On PostgreSQL other instances skip the locked rows, so each deadline is handled by one
    of them; SQLite has a single writer anyway.
    """
    statement = (
        select(Deadline)
        .where(Deadline.done_at.is_(None), Deadline.due_at <= now, Deadline.kind.in_(kinds))
        .order_by(Deadline.due_at, Deadline.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(statement)).all()
