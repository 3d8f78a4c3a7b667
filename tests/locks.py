"""Watching PostgreSQL's lock waits, for tests that hold a row while other work runs."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from persistence.database import Database


async def lock_waiters(db: Database) -> int:
    """How many sessions of this PostgreSQL database are waiting for a lock right now."""
    # A connection of its own per look: pg_stat_activity is frozen for the rest of a transaction.
    async with db.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


async def until_blocked_or_done(db: Database, task: asyncio.Task[Any], limit_s: float, waiters: int = 1) -> None:
    """Return once `waiters` sessions wait for a lock, or once `task` is done (when it never had to wait)."""
    async with asyncio.timeout(limit_s):
        while not task.done():
            if await lock_waiters(db) >= waiters:
                return
            await asyncio.sleep(0.01)
