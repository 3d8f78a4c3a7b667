"""The unit of work: one transaction, the events it emits, and their publication once it commits.

    async with UnitOfWork(db, relay) as uow:
        ...change things through uow.session, uow.emit(channel, event, data)...

When the block ends, the emitted events are written to the outbox in the same
transaction, the transaction commits, and the events are published. When the block
raises, the transaction rolls back and nothing is written or published. A publish that
fails after commit leaves the rows to the relay (channels/relay.py), so a committed
event is never lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.relay import Relay
from persistence import command_log, outbox
from persistence.database import Database

# What code that changes things is handed to announce a change: `emit(channel, event, data)`.
Emit = Callable[[str, str, dict[str, Any]], None]


class UnitOfWork:
    """A transaction whose events reach the outbox with it and are published after it commits; used once."""

    def __init__(self, db: Database, relay: Relay) -> None:
        self._db = db
        self._relay = relay
        self._events = outbox.Pending()
        self._session: AsyncSession | None = None
        self._scope: AbstractAsyncContextManager[None] | None = None

    @property
    def session(self) -> AsyncSession:
        """The session of this unit's transaction (only inside the `async with` block)."""
        if self._session is None:
            raise RuntimeError("the unit of work is not open")
        return self._session

    def emit(self, channel: str, event: str, data: dict[str, Any], event_id: str | None = None) -> None:
        """Record an event of this transaction; it is published once the transaction commits. An `event_id` of the
        caller's is written once: a transaction writing it again fails (an IntegrityError) and publishes nothing."""
        self._events.emit(channel, event, data, event_id)

    def log(self, entry: command_log.Entry) -> None:
        """Keep the reply of the command this transaction runs in the command log, written with its events."""
        self._events.log(entry)

    async def __aenter__(self) -> UnitOfWork:
        if self._scope is not None:
            raise RuntimeError("a unit of work is used once")
        self._scope = self._transaction()
        await self._scope.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> bool | None:
        assert self._scope is not None
        return await self._scope.__aexit__(exc_type, exc, traceback)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        # Rows published after earlier commits ride along: marked published in this transaction (channels/relay.py).
        marks: list[int] = []
        try:
            async with self._db.session() as session:
                self._session = session
                try:
                    yield
                    if self._events.writes():
                        marks = self._relay.take_unmarked()
                    await self._events.write(session, marks)
                finally:
                    self._session = None
        except BaseException:
            self._relay.marks_failed(marks)
            raise
        self._relay.marks_done(marks)
        await self._relay.publish_committed(self._events.written)
