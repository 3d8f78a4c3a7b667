"""The simulator's payment terminals: each charges what its kiosk asks of it, and approves or declines.

A terminal hears `payment.requested` on its own channel (or finds the payment in its
snapshot after a reconnect), reports it `processing`, waits `--approve-after` seconds and
sends the result: declined for a `--decline` share, else approved.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.client import CommandFailed
from channels.reconnecting import ReconnectingDevice


class Terminals:
    """The terminals of a run: the payments they are charging (or have charged), and the charges they are making."""

    def __init__(
        self,
        spawn: Callable[[Awaitable[None]], None],
        error: Callable[[BaseException], None],
        rng: random.Random,
        approved_at: dict[int, float],
        approve_after_s: float,
        decline_share: float,
        reply_timeout_s: float,
    ) -> None:
        self._spawn = spawn
        self._error = error
        self._rng = rng
        # When each order's payment was approved, by order id: its ticket reaching the kitchen is timed from it.
        self._approved_at = approved_at
        self._approve_after_s = approve_after_s
        self._decline_share = decline_share
        self._timeout_s = reply_timeout_s
        # Payments being charged or charged: an event or a snapshot seen twice, as a resume from an older position
        # can show them, starts nothing twice.
        self._charging: set[int] = set()

    def event(self, client: ReconnectingDevice, frame: dict[str, Any]) -> None:
        """A payment the terminal is asked to charge: charge it."""
        if frame["event"] == "payment.requested":
            self._charge_once(client, frame["data"])

    def snapshot(self, client: ReconnectingDevice, frame: dict[str, Any]) -> None:
        """The terminal's own channel: charge the payments it was asked for while it was away."""
        terminal_id = int(frame["channel"].split(":")[1])
        for payment in frame["data"].get("payments", []):
            if payment.get("terminal_id") == terminal_id:
                self._charge_once(client, payment)

    def _charge_once(self, client: ReconnectingDevice, payment: dict[str, Any]) -> None:
        if payment["id"] not in self._charging:
            self._charging.add(payment["id"])
            self._spawn(self._charge(client, payment))

    async def _charge(self, client: ReconnectingDevice, payment: dict[str, Any]) -> None:
        try:
            if payment.get("status") != "processing":
                await client.command(
                    "payment.progress", {"payment_id": payment["id"], "status": "processing"}, timeout=self._timeout_s
                )
            if self._approve_after_s:
                await asyncio.sleep(self._approve_after_s)
            approve = self._rng.random() >= self._decline_share
            if approve:
                self._approved_at[payment["order_id"]] = time.monotonic()
            status = "approved" if approve else "declined"
            await client.command(
                "payment.result", {"payment_id": payment["id"], "status": status}, timeout=self._timeout_s
            )
        except Exception as exc:
            self._error(exc)
            if not isinstance(exc, CommandFailed):
                self._charging.discard(payment["id"])  # not answered: a later snapshot may show it again
