"""From the outbox to the broker: right after commit, and by a relay for whatever was left behind.

The process that committed an event publishes it at once (`publish_committed`), together
with the events of every other command that committed in the same turn of the event loop:
one broker call for all of them, in the order they committed. If it died between commit
and publish, or the broker was down, the row stays unpublished and
the relay loop publishes it later; on PostgreSQL only one instance relays at a time
(an advisory lock), so rows go out in outbox order. Publishing the same row twice is
harmless: the broker recognises the event id and never gives it a second seq.

Rows published after commit are marked published by the next unit of work that writes
(channels/unit_of_work.py): on PostgreSQL within the same statement as its own events,
so marking costs neither a round trip nor a transaction of its own. Rows no unit of work
takes within `_MARK_DELAY_S` (the server is quiet) are marked in the background, all of
them in one UPDATE. A row the process could not mark (it died, or the database failed) is
simply published again by the relay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy import text

from channels.brokers import Broker, Outgoing
from channels.frames import encode_data
from persistence import outbox
from persistence.base import rfc3339, utcnow
from persistence.database import Database

log = logging.getLogger("channels.relay")

# Any constant shared by every instance: the key of the "one relay at a time" lock.
RELAY_LOCK_KEY = 7_140_512
_BATCH = 200
# How long closing waits for the marks of rows already published; one left unmarked is only published again.
_MARK_WAIT_S = 5.0
# How long published rows wait for a unit of work to mark them before a transaction of their own does.
_MARK_DELAY_S = 0.2


class Relay:
    """Publishes outbox rows to the broker and records that they were published."""

    def __init__(self, db: Database, broker: Broker, *, interval_s: float = 1.0) -> None:
        self._db = db
        self._broker = broker
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self.published = 0
        self.lag_s = 0.0
        # Rows published after commit and not yet marked; those a unit of work is marking; the task marking the
        # rest when no unit of work takes them.
        self._unmarked: list[int] = []
        self._taken: set[int] = set()
        self._marking: asyncio.Task[None] | None = None
        # The rows of the commands committing in this turn of the loop, and when their one publish is over.
        self._gathering: tuple[list[outbox.Event], asyncio.Future[None]] | None = None

    async def publish_committed(self, rows: Sequence[outbox.Event]) -> None:
        """Publish rows whose transaction just committed (marked published soon after), with those of the other
        commands committing in this turn of the loop; return once that publish is over. On failure they are left
        to the relay."""
        if not rows:
            return
        if self._gathering is not None:
            gathered, over = self._gathering
            gathered.extend(rows)
            await asyncio.shield(over)
            return
        gathered, over = list(rows), asyncio.get_running_loop().create_future()
        self._gathering = (gathered, over)
        try:
            try:
                await asyncio.sleep(0)  # the commands whose commits completed in this turn join
            finally:
                self._gathering = None
            await self._publish_gathered(gathered)
        except asyncio.CancelledError:
            self._wake.set()  # cancelled before the rows went out (or while): the relay sends them
            raise
        finally:
            over.set_result(None)

    async def _publish_gathered(self, rows: Sequence[outbox.Event]) -> None:
        try:
            await self._send(rows)
        except Exception as exc:
            log.warning("publish after commit failed, the relay will retry: %s", exc)
            self._wake.set()
            return
        if self._stopping:
            return  # closing: left unmarked, the rows are published again (harmlessly) by a relay
        self._unmarked.extend(row.id for row in rows)
        self._mark_later()

    def take_unmarked(self) -> list[int]:
        """Rows published and not yet marked, for a unit of work to mark in its transaction: it then calls
        `marks_done` once that commits, or gives them back with `marks_failed`."""
        ids, self._unmarked = self._unmarked, []
        self._taken.update(ids)
        return ids

    def marks_done(self, ids: Sequence[int]) -> None:
        """The unit of work that took these rows committed their marks."""
        self._taken.difference_update(ids)

    def marks_failed(self, ids: Sequence[int]) -> None:
        """The unit of work that took these rows rolled back: they wait to be marked again."""
        self._taken.difference_update(ids)
        if ids and not self._stopping:
            self._unmarked.extend(ids)
            self._mark_later()

    def _mark_later(self) -> None:
        if self._marking is None:
            self._marking = asyncio.get_running_loop().create_task(self._mark_unmarked(), name="outbox-marker")

    async def marked(self) -> None:
        """Return once no published row waits to be marked (its marking done or failed); under steady traffic
        that may be never, so callers bound it."""
        while self._marking is not None:
            # Waits without cancelling the marker when the caller is cancelled.
            await asyncio.wait({self._marking})

    async def _mark_unmarked(self) -> None:
        try:
            if not self._stopping:
                await asyncio.sleep(_MARK_DELAY_S)
            while self._unmarked:
                ids, self._unmarked = self._unmarked, []
                try:
                    async with self._db.session() as session:
                        await outbox.mark_published(session, ids)
                except Exception as exc:
                    log.warning("marking %d outbox events failed, the relay will send them again: %s", len(ids), exc)
        finally:
            self._marking = None

    async def _send(self, rows: Sequence[outbox.Event]) -> None:
        await self._broker.publish_many(
            [
                Outgoing(row.channel, row.event_id, row.event, encode_data(row.data), rfc3339(row.created_at))
                for row in rows
            ]
        )
        self.published += len(rows)

    async def _publish(self, rows: Sequence[outbox.Event]) -> None:
        await self._send(rows)
        async with self._db.session() as session:
            await outbox.mark_published(session, [row.id for row in rows])

    async def relay_once(self) -> int:
        """Publish every unpublished row (oldest first); returns how many went out."""
        sent = 0
        async with self._db.engine.connect() as lock_connection:
            if self._db.backend == "postgresql":
                # Held by this connection's transaction, so it ends with it however the relay stops
                # (a session lock could stay behind on a pooled connection if the unlock never ran).
                locked = await lock_connection.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RELAY_LOCK_KEY}
                )
                if not locked:
                    return 0
            while True:
                async with self._db.session() as session:
                    rows = await outbox.unpublished(session, _BATCH)
                # Published by this process already, their marks on the way: not again.
                known = self._taken.union(self._unmarked)
                rows = [row for row in rows if row.id not in known]
                if not rows:
                    return sent
                await self._publish(rows)
                sent += len(rows)

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before the pass, not after: a wake-up that arrives during the pass asks for another one.
            self._wake.clear()
            try:
                sent = await self.relay_once()
                if sent:
                    log.info("relayed %d outbox events", sent)
                self.lag_s = await self.lag_seconds()
            except Exception as exc:
                log.warning("outbox relay failed, retrying: %s", exc)
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            except TimeoutError:
                pass

    def start(self) -> None:
        """Run the relay loop in the background."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox-relay")

    async def close(self) -> None:
        """Stop the relay loop, after waiting (at most a few seconds) for the marks of rows already published."""
        # Also ends the loop on Python 3.11, where a cancellation landing just as an awaited operation completes
        # can be lost (asyncio.wait_for, which redis-py uses for every command, returns the result instead).
        self._stopping = True
        try:
            await asyncio.wait_for(self.marked(), _MARK_WAIT_S)
        except TimeoutError:
            log.warning("closing before every published outbox event was marked; the relay will send them again")
            if self._marking is not None:
                self._marking.cancel()
        finally:
            task, self._task = self._task, None
            if task is not None:
                self._wake.set()
                task.cancel()
                # Waits without raising the loop's CancelledError, so a cancellation of the caller still propagates.
                await asyncio.wait({task})

    async def lag_seconds(self) -> float:
        """Age of the oldest unpublished event, 0 when none waits (the outbox lag metric)."""
        async with self._db.session() as session:
            rows = await outbox.unpublished(session, 1)
        if not rows:
            return 0.0
        return max(0.0, (utcnow() - rows[0].created_at).total_seconds())
