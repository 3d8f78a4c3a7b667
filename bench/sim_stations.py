"""The simulator's kitchen station displays: each bumps its station's part of every ticket its channel shows.

With stations (`--stations grill,drinks`), the simulator's branch routes each line to a
station, and a display of each station, subscribed to `branch:{b}:kitchen:{station}` on
hello, bumps (`station.bump`) every ticket that reaches it `--kitchen-step` seconds after
it arrives. The last bump an order waits for makes it ready; the whole-kitchen displays
then hand it over (`order.complete`), as a counter does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.client import CommandFailed
from channels.reconnecting import ReconnectingDevice

# Ticket statuses a station still works on.
TO_BUMP = ("paid", "preparing")


def wants_tickets(event: str, _id: int | None) -> bool:
    """A station display acts on the tickets that reach it."""
    return event == "order.queued"


class StationDisplays:
    """The station displays of a run: what each has bumped, and the bumps it is making."""

    def __init__(
        self,
        spawn: Callable[[Awaitable[None]], None],
        error: Callable[[BaseException], None],
        ready_at: dict[int, float],
        step_s: float,
        reply_timeout_s: float,
    ) -> None:
        self._spawn = spawn
        self._error = error
        # When the bump an order waited for last was sent: the board's ready column follows it.
        self._ready_at = ready_at
        self._step_s = step_s
        self._timeout_s = reply_timeout_s
        # (station, order id) bumped or being bumped: a ticket seen again (a resume, a snapshot) is bumped once.
        self._bumping: set[tuple[str, int]] = set()

    def event(self, client: ReconnectingDevice, station: str, frame: dict[str, Any]) -> None:
        """A new ticket on the station's channel: bump it."""
        if frame["event"] == "order.queued":
            self._bump_once(client, station, frame["data"]["id"])

    def snapshot(self, client: ReconnectingDevice, station: str, frame: dict[str, Any]) -> None:
        """The station's tickets, instead of the events missed: bump those it has not bumped."""
        if ":kitchen:" not in frame["channel"]:
            return
        for ticket in frame["data"].get("tickets", []):
            if ticket["bumped_at"] is None and ticket["status"] in TO_BUMP:
                self._bump_once(client, station, ticket["id"])

    def _bump_once(self, client: ReconnectingDevice, station: str, order_id: int) -> None:
        if (station, order_id) not in self._bumping:
            self._bumping.add((station, order_id))
            self._spawn(self._bump(client, station, order_id))

    async def _bump(self, client: ReconnectingDevice, station: str, order_id: int) -> None:
        try:
            if self._step_s:
                await asyncio.sleep(self._step_s)
            self._ready_at[order_id] = time.monotonic()
            await client.command("station.bump", {"order_id": order_id}, timeout=self._timeout_s)
        except Exception as exc:
            self._error(exc)
            if not isinstance(exc, CommandFailed):
                self._bumping.discard((station, order_id))  # unanswered: a later snapshot may show it again
