"""Housekeeping forgets expired command replies and old published events, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from persistence import command_log
from persistence.base import utcnow
from persistence.database import Database
from persistence.tables import CommandLogEntry, OutboxEvent
from server.workers.housekeeping import clean_up


async def test_clean_up_keeps_what_is_still_needed(db: Database) -> None:
    """Replies older than 24 h and events published over a day ago go; fresh and unpublished ones stay."""
    old = utcnow() - timedelta(hours=25)
    async with db.session() as session:
        await command_log.record(session, "device:1", "old", "x", {"ok": True})
        await command_log.record(session, "device:1", "new", "x", {"ok": True})
        stale, fresh, waiting = (
            OutboxEvent(event_id=str(n), channel="device:1", event="e", data={}, created_at=created, published_at=at)
            for n, (created, at) in enumerate([(old, old), (utcnow(), utcnow()), (old, None)])
        )
        session.add_all([stale, fresh, waiting])
        await session.flush()
        (await session.get(CommandLogEntry, ("device:1", "old"))).created_at = old  # type: ignore[union-attr]
    assert await clean_up(db) == (1, 1)
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(CommandLogEntry)) == 1
        left = set((await session.scalars(select(OutboxEvent.id))).all())
    assert left == {fresh.id, waiting.id}
