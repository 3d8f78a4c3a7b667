"""Announcing daypart boundaries: when a window opens or closes, each branch's kiosks hear which items switched.

Nothing changes in the database when breakfast ends, so no command emits anything: this
worker sleeps until the next moment any branch's clock reaches a daypart's boundary (or
changes, as at DST), reads each active branch's menu just before and at that moment, and
emits `menu.item_updated` on `branch:{b}:menu` for every item whose `orderable` switched,
the whole item as the menu now shows it. Devices never poll.

Every instance runs the loop. Each event's id is derived from the branch, the boundary
and the item, and the outbox takes an event id once: the first instance to commit a
boundary's events announces it, the others' transactions are refused and announce
nothing, so a device hears each switch once. A loop starts from its start-up moment:
boundaries passed while no instance ran are not announced (the menu snapshot a
reconnecting device reads is computed for the present anyway).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from channels import names
from channels.relay import Relay
from channels.unit_of_work import UnitOfWork
from persistence.base import utcnow
from persistence.database import Database
from persistence.tables import Branch, Daypart
from server.domain.dayparts import next_boundary
from server.payloads.menu import branch_menu

log = logging.getLogger("server.workers.dayparts")

# How long the loop sleeps at most before it looks at the dayparts again: a new or moved window is seen within it.
RECHECK_S = 60.0
# The namespace of the boundaries' event ids (uuid5 of branch, boundary and item).
EVENT_IDS = uuid.UUID("6f1d6c1e-2b7a-4e59-9a55-3c0f5d1f8a42")
JUST_BEFORE = timedelta(microseconds=1)


def event_id(branch_id: int, boundary: datetime, item_id: int) -> str:
    """The id of the `menu.item_updated` a boundary makes for one item of one branch: the same on every instance."""
    return str(uuid.uuid5(EVENT_IDS, f"daypart:{branch_id}:{boundary.isoformat()}:{item_id}"))


def _items(menu: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {item["id"]: item for category in menu["categories"] for item in category["items"]}


class DaypartWorker:
    """Wakes at each daypart boundary of any branch and announces the items whose orderability switched.

    `clock` and `sleep` are the present and the wait (a test drives `catch_up` with moments of its own instead).
    """

    def __init__(
        self,
        db: Database,
        relay: Relay,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._db = db
        self._relay = relay
        self._clock = clock
        self._sleep = sleep
        self._last: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def _branches(self) -> tuple[list[tuple[int, str]], set[Any]]:
        """The active branches (id, time zone) and every daypart's boundaries."""
        async with self._db.session() as session:
            branches = (await session.execute(select(Branch.id, Branch.timezone).where(Branch.is_active))).all()
            parts = (await session.execute(select(Daypart.starts_at, Daypart.ends_at))).all()
        return [(b.id, b.timezone) for b in branches], {t for part in parts for t in part}

    async def next_boundary(self, after: datetime) -> datetime | None:
        """The first moment after `after` at which any active branch's windows may open or close; None without
        dayparts."""
        branches, boundaries = await self._branches()
        # Per time zone, not per branch: a chain's branches share a few.
        zones = {tz for _, tz in branches}
        moments = [m for tz in zones if (m := next_boundary(boundaries, after, tz)) is not None]
        return min(moments, default=None)

    async def announce(self, boundary: datetime) -> int:
        """Emit `menu.item_updated` for each item of each active branch whose orderability switched at `boundary`;
        how many this call announced (0 when another instance did it first)."""
        branches, boundaries = await self._branches()
        # Only the branches whose clocks are at a boundary then: the others' menus did not change.
        zones = {tz for _, tz in branches if next_boundary(boundaries, boundary - JUST_BEFORE, tz) == boundary}
        announced = 0
        for branch_id, tz in branches:
            if tz not in zones:
                continue
            try:
                async with UnitOfWork(self._db, self._relay) as uow:
                    before = _items(await branch_menu(uow.session, branch_id, boundary - JUST_BEFORE))
                    after = _items(await branch_menu(uow.session, branch_id, boundary))
                    switched = [
                        item
                        for item_id, item in after.items()
                        if item_id in before and before[item_id]["orderable"] != item["orderable"]
                    ]
                    for item in switched:
                        key = event_id(branch_id, boundary, item["id"])
                        uow.emit(names.branch_menu(branch_id), "menu.item_updated", item, key)
            except IntegrityError:
                # Another instance committed this boundary's events for the branch first: they are published.
                continue
            announced += len(switched)
        return announced

    async def catch_up(self, now: datetime) -> int:
        """Announce every boundary since the last one announced (or the loop's start) up to `now`, in order; how
        many events this call emitted."""
        if self._last is None:
            self._last = now
            return 0
        emitted = 0
        while (boundary := await self.next_boundary(self._last)) is not None and boundary <= now:
            emitted += await self.announce(boundary)
            self._last = boundary
        return emitted

    async def _run(self) -> None:
        await self.catch_up(self._clock())
        while True:
            try:
                assert self._last is not None
                boundary = await self.next_boundary(self._last)
                wait = RECHECK_S if boundary is None else (boundary - self._clock()).total_seconds()
                await self._sleep(min(max(wait, 0.0), RECHECK_S))
                await self.catch_up(self._clock())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("daypart round failed, trying again later: %s", exc)
                await self._sleep(RECHECK_S)

    def start(self) -> None:
        """Start the loop (again after `close`); a second call while it runs does nothing."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dayparts")

    async def close(self) -> None:
        """Stop the loop; a round in progress is cancelled (its transaction rolls back)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
