"""The simulator's kitchen displays: they share the tickets and start, ready and complete each of theirs.

Each display takes the orders whose id falls to it (the id modulo the number of displays)
and moves a ticket on `--kitchen-step` seconds apart: `order.start`, `order.ready`,
`order.complete`. With stations (bench/sim_stations.py) the stations' bumps make an order
ready, and the displays only hand it over (`order.complete`). After a reconnect a display
takes up the tickets of its snapshot where each stands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from channels.client import CommandFailed
from channels.reconnecting import ReconnectingDevice

# What a kitchen display still has to do for a ticket, by the status the ticket shows.
KITCHEN_STEPS = {
    "paid": ("order.start", "order.ready", "order.complete"),
    "preparing": ("order.ready", "order.complete"),
    "ready": ("order.complete",),
}
# The same where stations bump the orders ready: the kitchen displays hand them over.
HAND_OVER_STEPS = {"ready": ("order.complete",)}


class KitchenDisplays:
    """The kitchen displays of a run: the tickets they are cooking (or have cooked), and the steps they are taking.

    `count` displays share the tickets; with `hand_over` (the branch has stations) they only complete what the
    stations made ready. `queued` hears of each new ticket a display takes (by order id), `cooked` of each ticket
    a display has completed.
    """

    def __init__(
        self,
        spawn: Callable[[Awaitable[None]], None],
        error: Callable[[BaseException], None],
        count: int,
        hand_over: bool,
        ready_at: dict[int, float],
        queued: Callable[[int], None],
        cooked: Callable[[int], None],
        step_s: float,
        reply_timeout_s: float,
    ) -> None:
        self._spawn = spawn
        self._error = error
        self._count = count
        self._hand_over = hand_over
        self._steps = HAND_OVER_STEPS if hand_over else KITCHEN_STEPS
        # When each order was made ready, by order id: the board's ready column is timed from it.
        self._ready_at = ready_at
        self._queued = queued
        self._cooked = cooked
        self._step_s = step_s
        self._timeout_s = reply_timeout_s
        # Tickets being cooked or cooked: an event or a snapshot seen twice, as a resume from an older position can
        # show them, starts nothing twice.
        self._cooking: set[int] = set()

    def takes(self, index: int, order_id: int) -> bool:
        """Whether display `index` takes the order: each takes the orders whose id falls to it."""
        return order_id % self._count == index

    def wants(self, index: int, event: str, order_id: int | None) -> bool:
        """Whether display `index` acts on an event (a `Wants` once the index is given)."""
        # With stations, the kitchen displays hand over what the stations' bumps made ready.
        acts_on = ("order.queued", "order.ready") if self._hand_over else ("order.queued",)
        return event in acts_on and (order_id is None or self.takes(index, order_id))

    def event(self, client: ReconnectingDevice, index: int, frame: dict[str, Any]) -> None:
        """A new ticket of display `index`, or one the stations made ready: move it on."""
        if frame["event"] not in ("order.queued", "order.ready"):
            return
        order_id = frame["data"]["id"]
        if not self.takes(index, order_id):
            return  # another display's ticket
        if frame["event"] == "order.ready":
            self._cook_once(client, order_id, "ready")
            return
        self._queued(order_id)
        self._cook_once(client, order_id, "paid")

    def snapshot(self, client: ReconnectingDevice, index: int, frame: dict[str, Any]) -> None:
        """The kitchen queue, instead of the events missed: take up every ticket of this display where it stands."""
        if not frame["channel"].endswith(":kitchen"):
            return
        for ticket in frame["data"].get("tickets", []):
            if self.takes(index, ticket["id"]):
                self._cook_once(client, ticket["id"], ticket["status"])

    def _cook_once(self, client: ReconnectingDevice, order_id: int, status: str) -> None:
        steps = self._steps.get(status)
        if steps and order_id not in self._cooking:
            self._cooking.add(order_id)
            self._spawn(self._cook(client, order_id, steps))

    async def _cook(self, client: ReconnectingDevice, order_id: int, steps: Sequence[str]) -> None:
        try:
            for step in steps:
                if self._step_s:
                    await asyncio.sleep(self._step_s)
                if step == "order.ready":
                    self._ready_at[order_id] = time.monotonic()
                await client.command(step, {"order_id": order_id}, timeout=self._timeout_s)
            self._cooked(order_id)
        except Exception as exc:
            self._error(exc)
            if not isinstance(exc, CommandFailed):
                self._cooking.discard(order_id)  # unanswered: a later snapshot may show the ticket again
