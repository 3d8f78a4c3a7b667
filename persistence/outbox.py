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
# One INSERT for all of a transaction's events, their ids back in the order they were emitted.
_WRITE = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)


class Pending:
    """The events one transaction emits: written to the outbox together just before it commits, then published.

        pending = Pending()
        async with db.session() as session:
            ...change things, pending.emit(...)...
            await pending.write(session)
        await relay.publish_committed(pending.rows)

    Rows are written with one plain INSERT rather than through the ORM: nothing reads them
    back in the transaction, and the ORM's bookkeeping cost more than the statement.
    """

    def __init__(self) -> None:
        self.rows: list[OutboxEvent] = []
        self._written = 0

    def emit(self, channel: str, event: str, data: dict[str, Any]) -> None:
        """Record an event of this transaction; it reaches the outbox with `write`."""
        self.rows.append(
            OutboxEvent(event_id=str(uuid.uuid4()), channel=channel, event=event, data=data, created_at=utcnow())
        )

    async def write(self, session: AsyncSession) -> None:
        """Insert the events emitted since the last write in the session's transaction, in emission order."""
        new = self.rows[self._written :]
        if not new:
            return
        values = [
            {"event_id": row.event_id, "channel": row.channel, "event": row.event, "data": row.data}
            | {"created_at": row.created_at, "published_at": None}
            for row in new
        ]
        ids = (await session.execute(_WRITE, values)).scalars().all()
        for row, row_id in zip(new, ids, strict=True):
            row.id = row_id
        self._written = len(self.rows)


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
