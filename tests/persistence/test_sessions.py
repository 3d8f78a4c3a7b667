"""Sessions under concurrency: on SQLite the process's transactions take turns; on PostgreSQL they run together."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import exc, func, select, text, update

from persistence import database
from persistence.database import Database
from persistence.tables import Branch


async def test_concurrent_sessions_all_commit_and_take_turns_only_on_sqlite(db: Database) -> None:
    """Twenty sessions at once each add one to a counter: all twenty land; on SQLite no two were ever open at once."""
    async with db.session() as session:
        branch = Branch(name="Counter", currency="EUR", timezone="UTC", tax_rate_bp=0)
        session.add(branch)
        await session.flush()
        branch_id = branch.id
    open_now = 0
    most = 0

    async def add_one() -> None:
        nonlocal open_now, most
        async with db.session() as session:
            open_now += 1
            most = max(most, open_now)
            await session.execute(
                update(Branch).where(Branch.id == branch_id).values(tax_rate_bp=Branch.tax_rate_bp + 1)
            )
            await asyncio.sleep(0.01)  # hold the transaction across a turn of the event loop
            open_now -= 1

    await asyncio.wait_for(asyncio.gather(*(add_one() for _ in range(20))), 30)
    async with db.session() as session:
        total = await session.scalar(select(func.sum(Branch.tax_rate_bp)).where(Branch.id == branch_id))
    assert total == 20
    if db.backend == "sqlite":
        assert most == 1
    else:
        assert most > 1  # PostgreSQL's row lock serialises the updates, not the sessions


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_connection_that_died_while_idle_in_the_pool_is_replaced(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database restart kills pooled connections; the next session after an idle spell still works."""
    async with db.session() as session:
        killed = await session.scalar(text("SELECT pg_backend_pid()"))
    # Killed from outside the pool, as a restart would, while the connection waits in the pool.
    admin = await asyncpg.connect(db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", killed)
    finally:
        await admin.close()
    # As if it had waited in the pool for longer than IDLE_PING_S.
    monkeypatch.setattr(database, "IDLE_PING_S", 0.0)
    for _ in range(3):
        async with db.session() as session:
            assert await session.scalar(text("SELECT pg_backend_pid()")) != killed


class Pinged:
    """A driver connection that counts pings, and fails them when told to."""

    def __init__(self, *, dead: bool = False) -> None:
        self.pings = 0
        self.dead = dead

    def ping(self) -> None:
        """Count the ping; raise as a dead connection's driver does."""
        self.pings += 1
        if self.dead:
            raise ConnectionError("connection is closed")


class Record:
    """A pool entry's `info`, all the listeners use."""

    def __init__(self) -> None:
        self.info: dict[str, float] = {}


def test_only_a_connection_idle_for_a_while_is_pinged_and_a_dead_one_renews_the_pool() -> None:
    """Used just now: no ping; idle for IDLE_PING_S: one ping; a failed ping asks the pool to replace everything."""
    record, connection = Record(), Pinged()
    database._note_use(connection, record)  # type: ignore[arg-type]
    database._ping_when_idle(connection, record, None)  # type: ignore[arg-type]
    assert connection.pings == 0
    record.info["last_used"] -= database.IDLE_PING_S
    database._ping_when_idle(connection, record, None)  # type: ignore[arg-type]
    assert connection.pings == 1
    with pytest.raises(exc.InvalidatePoolError):
        database._ping_when_idle(Pinged(dead=True), record, None)  # type: ignore[arg-type]
