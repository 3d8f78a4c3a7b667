"""The transactional outbox: events written with the change that caused them, published after commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import utcnow
from persistence.tables import OutboxEvent


def add_event(session: AsyncSession, channel: str, event: str, data: dict[str, Any]) -> OutboxEvent:
    """Append an event to the outbox in the session's transaction; it is published once that commits."""
    row = OutboxEvent(event_id=str(uuid.uuid4()), channel=channel, event=event, data=data, created_at=utcnow())
    session.add(row)
    return row


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
