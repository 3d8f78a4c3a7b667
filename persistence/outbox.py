"""The transactional outbox: events written with the change that caused them, published after commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table, utcnow
from persistence.tables import OutboxEvent

_TABLE = table(OutboxEvent)
# A transaction's events with their ids back in the order they were emitted: on PostgreSQL one INSERT for all of
# them, on SQLite one per event (the only way it gives ids in a known order).
_WRITE = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)


class Pending:
    """The events one transaction emits: written to the outbox together just before it commits, then published.

    The unit of work (channels/unit_of_work.py) holds one per transaction and does both.
    Rows are written with plain INSERTs rather than through the ORM: nothing reads them
    back in the transaction, and the ORM's bookkeeping cost more than the statements. An
    event emitted after `write`, or rows asked for that were never written, raise: either
    would publish an event that is not in the outbox.
    """

    def __init__(self) -> None:
        self._rows: list[OutboxEvent] = []
        self._written = False

    def __len__(self) -> int:
        return len(self._rows)

    def emit(self, channel: str, event: str, data: dict[str, Any]) -> None:
        """Record an event of this transaction; it reaches the outbox with `write`."""
        if self._written:
            raise RuntimeError(f"{event} emitted after this transaction's events were written")
        row = OutboxEvent(event_id=str(uuid.uuid4()), channel=channel, event=event, data=data, created_at=utcnow())
        self._rows.append(row)

    async def write(self, session: AsyncSession) -> None:
        """Insert the emitted events in the session's transaction, in emission order (once, before commit)."""
        if self._written:
            raise RuntimeError("this transaction's events were written already")
        self._written = True
        if not self._rows:
            return
        values = [
            {"event_id": row.event_id, "channel": row.channel, "event": row.event, "data": row.data}
            | {"created_at": row.created_at, "published_at": None}
            for row in self._rows
        ]
        ids = (await session.execute(_WRITE, values)).scalars().all()
        for row, row_id in zip(self._rows, ids, strict=True):
            row.id = row_id

    @property
    def written(self) -> list[OutboxEvent]:
        """The events, with their outbox ids, to publish once the transaction has committed."""
        if self._rows and not self._written:
            raise RuntimeError("events emitted but never written to the outbox")
        return self._rows


async def unpublished(session: AsyncSession, limit: int) -> Sequence[OutboxEvent]:
    """The oldest events not yet published, in the order they were written."""
    statement = select(OutboxEvent).where(OutboxEvent.published_at.is_(None)).order_by(OutboxEvent.id).limit(limit)
    return (await session.scalars(statement)).all()


async def mark_published(session: AsyncSession, ids: Sequence[int]) -> None:
    """Record that these events reached the broker."""
    if ids:
        statement = update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=utcnow())
        await session.execute(statement)


async def forget_published_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete events published before `cutoff` (they live on in the broker's history); returns how many."""
    statement = delete(OutboxEvent).where(OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < cutoff)
    result = await session.execute(statement)
    return cast(CursorResult[Any], result).rowcount
