"""Watching PostgreSQL's lock waits, for tests that hold a row while other work runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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


async def waited_for_or_passed_over(
    db: Database, model: type[Any], row_id: int, lock: Callable[..., Awaitable[Any]], limit_s: float
) -> None:
    """While another transaction holds row `row_id` of `model`, `lock(session, row_id)` waits for it, and with
    `if_free=True` answers None at once; once the holder ends, the waiting lock gets the row."""

    async def lock_in_own_transaction() -> int | None:
        async with db.session() as session:
            row = await lock(session, row_id)
            return None if row is None else int(row.id)

    async with db.session() as holder:
        await holder.get(model, row_id, with_for_update=True)
        async with db.session() as other:
            assert await asyncio.wait_for(lock(other, row_id, if_free=True), limit_s) is None
        waiting = asyncio.create_task(lock_in_own_transaction())
        await until_blocked_or_done(db, waiting, limit_s)
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, limit_s) == row_id
