"""Periodic clean-up of what the database only needs for a while: command replies and published events."""

from __future__ import annotations

import logging
from datetime import timedelta

from persistence import command_log, outbox
from persistence.base import utcnow
from persistence.database import Database
from server.workers.periodic import Periodic

log = logging.getLogger("server.workers.housekeeping")

# PROTOCOL.md: a command id is unique per principal for 24 hours.
COMMAND_ID_LIFETIME = timedelta(hours=24)
# Published events are in the broker's history; the rows stay a day for inspection.
PUBLISHED_EVENT_LIFETIME = timedelta(hours=24)
INTERVAL_S = 3600.0


async def clean_up(db: Database) -> tuple[int, int]:
    """Forget expired command replies and old published events; returns how many of each."""
    now = utcnow()
    async with db.session() as session:
        replies = await command_log.forget_before(session, now - COMMAND_ID_LIFETIME)
        events = await outbox.forget_published_before(session, now - PUBLISHED_EVENT_LIFETIME)
    return replies, events


class Housekeeping:
    """Runs `clean_up` every hour in the background (every instance; the deletes are idempotent)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._loop = Periodic("housekeeping", self._round, INTERVAL_S, log)

    async def _round(self) -> None:
        replies, events = await clean_up(self._db)
        if replies or events:
            log.info("forgot %d command replies and %d published events", replies, events)

    def start(self) -> None:
        """Start the background loop."""
        self._loop.start()

    async def close(self) -> None:
        """Stop the loop."""
        await self._loop.close()
