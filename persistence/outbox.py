"""The transactional outbox: events written with the change that caused them, published after commit."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ARRAY, BigInteger, CursorResult, bindparam, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import command_log
from persistence.base import table, utcnow
from persistence.prepared import Prepared
from persistence.tables import OutboxEvent

_TABLE = table(OutboxEvent)
# A transaction's events with their ids back in the order they were emitted: on PostgreSQL one INSERT for all of
# them, on SQLite one per event (the only way it gives ids in a known order).
_WRITE = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)
_LOGGED = ("principal", "command_id", "command", "reply", "created_at")
_EVENT = ("event_id", "channel", "event", "data", "created_at")


@dataclass(slots=True)
class Event:
    """An event as its outbox row holds it; `id` once the row is written."""

    event_id: str
    channel: str
    event: str
    data: dict[str, Any]
    created_at: datetime
    id: int = 0


@functools.cache
def _write_with_log(count: int) -> Prepared:
    """PostgreSQL: the command log row, `count` events, and the marks of events published earlier, in one statement
    (the log row and the marks in data-modifying CTEs).

    Written as text, from the tables' own names and types: SQLAlchemy does not cache the
    compiled SQL of a multi-row INSERT construct, and compiling it anew for every command
    cost more than the round trip it saves. One per count (a command emits a handful).
    """
    log = command_log.TABLE
    log_values = ", ".join(f":log_{name}" for name in _LOGGED)
    rows = ", ".join("(" + ", ".join(f":{name}_{n}" for name in _EVENT) + ")" for n in range(count))
    sql = (
        f"WITH logged AS (INSERT INTO {log.name} ({', '.join(_LOGGED)}) VALUES ({log_values})), "
        f"marked AS (UPDATE {_TABLE.name} SET published_at = :marked_at WHERE id = ANY(:marked_ids)) "
        f"INSERT INTO {_TABLE.name} ({', '.join(_EVENT)}) VALUES {rows} RETURNING id, event_id"
    )
    binds = [bindparam(f"log_{name}", type_=log.c[name].type) for name in _LOGGED]
    binds += [
        bindparam("marked_at", type_=_TABLE.c.published_at.type),
        bindparam("marked_ids", type_=ARRAY(BigInteger)),
    ]
    binds += [bindparam(f"{name}_{n}", type_=_TABLE.c[name].type) for n in range(count) for name in _EVENT]
    return Prepared(text(sql).bindparams(*binds).columns(_TABLE.c.id, _TABLE.c.event_id))


class Pending:
    """The events one transaction emits, and the reply of the command it runs: written together just before it
    commits; then the events are published.

    The unit of work (channels/unit_of_work.py) holds one per transaction and does both.
    Rows are written with plain INSERTs rather than through the ORM: nothing reads them
    back in the transaction, and the ORM's bookkeeping cost more than the statements. On
    PostgreSQL the command log row and the events go in one statement, one round trip
    less for every command. An event emitted after `write`, or rows asked for that were
    never written, raise: either would publish an event that is not in the outbox.
    """

    def __init__(self) -> None:
        self._rows: list[Event] = []
        self._logged: command_log.Entry | None = None
        self._written = False

    def __len__(self) -> int:
        return len(self._rows)

    def emit(self, channel: str, event: str, data: dict[str, Any], event_id: str | None = None) -> None:
        """Record an event of this transaction; it reaches the outbox with `write`. An `event_id` of the caller's
        (a fresh one otherwise) makes the transaction fail on an event some transaction already wrote."""
        if self._written:
            raise RuntimeError(f"{event} emitted after this transaction's events were written")
        self._rows.append(Event(event_id or str(uuid.uuid4()), channel, event, data, utcnow()))

    def log(self, entry: command_log.Entry) -> None:
        """Record the reply of the command this transaction runs; it reaches the command log with `write`."""
        if self._written or self._logged is not None:
            raise RuntimeError("a transaction logs one reply, before its events are written")
        self._logged = entry

    def writes(self) -> bool:
        """True when `write` has something to write: a reply or events."""
        return self._logged is not None or bool(self._rows)

    async def write(self, session: AsyncSession, marks: Sequence[int] = ()) -> None:
        """Insert the logged reply and the emitted events (in emission order) in the session's transaction, once;
        `marks`: events published after earlier commits, recorded as published in the same go."""
        if self._written:
            raise RuntimeError("this transaction's events were written already")
        self._written = True
        logged, rows = self._logged, self._rows
        if logged is not None and rows and session.get_bind().dialect.name == "postgresql":
            params = {f"log_{name}": value for name, value in logged.values().items()}
            params |= {"marked_at": utcnow(), "marked_ids": list(marks)}
            for n, row in enumerate(rows):
                params |= {f"{name}_{n}": getattr(row, name) for name in _EVENT}
            written = await _write_with_log(len(rows)).rows(session, params)
            by_event = {event_id: row_id for row_id, event_id in written}
            for row in rows:
                row.id = by_event[row.event_id]
            return
        await mark_published(session, marks)
        if logged is not None:
            await session.execute(command_log.INSERT, logged.values())
        if rows:
            values = [{name: getattr(row, name) for name in _EVENT} | {"published_at": None} for row in rows]
            ids_in_order = (await session.execute(_WRITE, values)).scalars().all()
            for row, row_id in zip(rows, ids_in_order, strict=True):
                row.id = row_id

    @property
    def written(self) -> list[Event]:
        """The events, with their outbox ids, to publish once the transaction has committed."""
        if self._rows and not self._written:
            raise RuntimeError("events emitted but never written to the outbox")
        return self._rows


_UNPUBLISHED = (
    select(_TABLE.c.event_id, _TABLE.c.channel, _TABLE.c.event, _TABLE.c.data, _TABLE.c.created_at, _TABLE.c.id)
    .where(_TABLE.c.published_at.is_(None))
    .order_by(_TABLE.c.id)
    .limit(bindparam("limit"))
)


async def unpublished(session: AsyncSession, limit: int) -> list[Event]:
    """The oldest events not yet published, in the order they were written."""
    return [Event(*row) for row in await session.execute(_UNPUBLISHED, {"limit": limit})]


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
