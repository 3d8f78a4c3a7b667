"""The engine and sessions, the same for SQLite (local) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers run beside the writer; busy_timeout makes writers queue instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # The driver's own implicit BEGIN is turned off: `_begin_immediate` starts every transaction.
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is locked" when
    # another connection wrote in between (busy_timeout does not apply to that upgrade); taking the
    # write lock up front makes concurrent writers queue instead, e.g. kiosks racing for stock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# A pooled connection idle this long is checked before use; one in steady use is not.
IDLE_PING_S = 5.0


def _note_use(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["last_used"] = time.monotonic()


def _ping_when_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    # Not `pool_pre_ping`: on asyncpg that is three more round trips (BEGIN, a query, ROLLBACK) before every
    # transaction. A connection that stayed in the pool for seconds may have died with a database restart,
    # so it alone is checked; a dead one means a restart, so the pool replaces all it holds, as pre-ping does.
    if time.monotonic() - record.info.get("last_used", 0.0) < IDLE_PING_S:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        raise exc.InvalidatePoolError(str(error)) from error


def _json_text(value: Any) -> str:
    # JSON columns (a command's reply, an event's data, an order line's options) are written on every command.
    return orjson.dumps(value).decode()


def create_engine(url: str, *, echo: bool = False, pool_size: int = 30) -> AsyncEngine:
    """An async engine for `url`, with SQLite set up for concurrent use; on PostgreSQL a pool of at most
    `pool_size` connections, opened as needed and kept."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, json_serializer=_json_text, json_deserializer=orjson.loads)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    # Last in, first out: under light load the same few connections serve, stay fresh and need no ping.
    engine = create_async_engine(
        url,
        echo=echo,
        # No overflow: a connection opened beyond the pool's size is closed again when it comes back, so a busy
        # server would open and close connections all the time (a PostgreSQL backend each, its start the costliest
        # work the database did per order); one kept for the next burst costs a little memory.
        pool_size=pool_size,
        max_overflow=0,
        pool_use_lifo=True,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
    )
    for moment in ("connect", "checkin"):
        event.listen(engine.sync_engine, moment, _note_use)
    event.listen(engine.sync_engine, "checkout", _ping_when_idle)
    return engine


class Database:
    """One engine and its session factory; `session()` is a unit of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time, and every transaction here takes the write lock (BEGIN IMMEDIATE).
        # Queued in the process, the next one starts the moment the last ends; left to SQLite's busy handler,
        # waiting writers sleep in growing steps (up to 100 ms each) and the unlucky ones wait for seconds.
        self._sqlite_turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False, pool_size: int = 30) -> Database:
        """A database for an async SQLAlchemy URL (`pool_size`: PostgreSQL connections kept at most)."""
        return cls(create_engine(url, echo=echo, pool_size=pool_size))

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        On SQLite the process's transactions take turns (see `__init__`); a session must therefore
        never be opened inside another one, which SQLite's single writer forbids anyway.
        """
        if self._sqlite_turn is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        async with self._sqlite_turn, self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
