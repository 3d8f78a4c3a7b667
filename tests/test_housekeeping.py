"""Housekeeping forgets expired command replies and old published events, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from persistence import command_log, outbox
from persistence.base import utcnow
from persistence.database import Database
from persistence.tables import CommandLogEntry, OutboxEvent
from server.housekeeping import clean_up


async def test_clean_up_keeps_what_is_still_needed(db: Database) -> None:
    """Replies older than 24 h and events published over a day ago go; fresh and unpublished ones stay."""
    old = utcnow() - timedelta(hours=25)
    async with db.session() as session:
        await command_log.record(session, "device:1", "old", "x", {"ok": True})
        await command_log.record(session, "device:1", "new", "x", {"ok": True})
        events = outbox.Pending()
        for _ in range(3):
            events.emit("device:1", "e", {})
        stale, fresh, waiting = events.rows
        stale.published_at, fresh.published_at, waiting.created_at = old, utcnow(), old
        session.add_all(events.rows)
        await session.flush()
        (await session.get(CommandLogEntry, ("device:1", "old"))).created_at = old  # type: ignore[union-attr]
    assert await clean_up(db) == (1, 1)
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(CommandLogEntry)) == 1
        left = set((await session.scalars(select(OutboxEvent.id))).all())
    assert left == {fresh.id, waiting.id}
