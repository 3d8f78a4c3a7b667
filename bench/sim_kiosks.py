"""The simulator's kiosks: each builds a cart, places the order, has its terminal charge it and waits for the result.

A cart holds what a customer picks (bench/sim_carts.py). A declined card is tried again,
`PAYMENT_TRIES` times in all, then the order is cancelled; so is an order whose payment
could not be had at all. A kiosk learns how its payments ended from their events, or,
after a reconnect, from its own channel's snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench.sim_carts import Carts
from bench.tally import Outcomes, Tally
from channels.reconnecting import ReconnectingDevice

# The statuses a payment ends in.
FINAL = {"approved", "declined", "failed", "cancelled", "expired", "needs_refund"}
PAYMENT_TRIES = 3


class Kiosks:
    """The kiosks of a run: the orders they placed, the payments each waits for, and how those ended.

    `tally` is the run's current tally (a run starts a new one as its orders begin); `more_orders` says whether a
    kiosk is to place another order.
    """

    def __init__(
        self,
        error: Callable[[BaseException], None],
        carts: Carts,
        tally: Callable[[], Tally],
        more_orders: Callable[[], bool],
        approve_after_s: float,
        think_s: float,
        reply_timeout_s: float,
    ) -> None:
        self._error = error
        self._carts = carts
        self._tally = tally
        self._more_orders = more_orders
        self._approve_after_s = approve_after_s
        self._think_s = think_s
        self._timeout_s = reply_timeout_s
        self.payments: dict[int, Outcomes] = {}
        # Per kiosk, the payments it waits for and their orders: a snapshot tells how those it missed ended.
        self.paying: dict[int, dict[int, int]] = {}
        # The orders placed in this run (a kitchen may also take up orders of an earlier one from a snapshot).
        self.placed_ids: set[int] = set()

    async def shop(self, client: ReconnectingDevice, kiosk_id: int) -> None:
        """Place orders and get them paid, one after another, for as long as the run wants more."""
        outcomes = self.payments.setdefault(kiosk_id, Outcomes())
        while self._more_orders() and not client.closed.is_set():
            self._tally().placed += 1  # counted before the reply, so --orders is never overshot
            try:
                cart = await client.command("cart.create", self._carts.new_cart(), timeout=self._timeout_s)
                for line in self._carts.lines():
                    await client.command("cart.add", {"cart_id": cart["id"], **line}, timeout=self._timeout_s)
                other = self._carts.switch_locale(cart)
                if other is not None:
                    # The customer switches language half way.
                    await client.command(
                        "cart.set_locale", {"cart_id": cart["id"], "locale": other}, timeout=self._timeout_s
                    )
                sent = time.monotonic()
                order = await client.command("order.place", {"cart_id": cart["id"]}, timeout=self._timeout_s)
                self._tally().place_s.append(time.monotonic() - sent)
                self.placed_ids.add(order["id"])
            except Exception as exc:
                self._tally().placed -= 1
                self._error(exc)
                await asyncio.sleep(0.2)
                continue
            try:
                await self._pay(client, kiosk_id, outcomes, order["id"])
            except Exception as exc:
                self._error(exc)
                await self._give_up(client, order["id"])
            if self._think_s:
                await asyncio.sleep(self._think_s)

    def event(self, kiosk_id: int, frame: dict[str, Any]) -> None:
        """A payment of the kiosk's that ended: its wait is over."""
        if frame["event"].startswith("payment.") and frame["data"]["status"] in FINAL:
            self.payments.setdefault(kiosk_id, Outcomes()).report(frame["data"]["id"], frame["data"]["status"])

    def snapshot(self, kiosk_id: int, frame: dict[str, Any]) -> None:
        """The kiosk's own channel, instead of the events it missed: the payments it waits for that are over."""
        if not frame["channel"].startswith("device:"):
            return
        still_open = {payment["id"] for payment in frame["data"].get("payments", [])}
        unpaid = {order["id"] for order in frame["data"].get("orders", [])}
        outcomes = self.payments.setdefault(kiosk_id, Outcomes())
        for payment_id, order_id in list(self.paying.get(kiosk_id, {}).items()):
            if payment_id not in still_open:
                # Over, but how is not shown: paid if its order no longer awaits payment, else try again.
                outcomes.report(payment_id, "declined" if order_id in unpaid else "approved")

    async def _pay(self, client: ReconnectingDevice, kiosk_id: int, outcomes: Outcomes, order_id: int) -> None:
        paying = self.paying.setdefault(kiosk_id, {})
        for _ in range(PAYMENT_TRIES):
            payment = await client.command("payment.start", {"order_id": order_id}, timeout=self._timeout_s)
            paying[payment["id"]] = order_id
            try:
                async with asyncio.timeout(self._approve_after_s + self._timeout_s):
                    status = await outcomes.wait(payment["id"])
            finally:
                paying.pop(payment["id"], None)
            if status in ("approved", "needs_refund"):
                self._tally().paid += 1
                return
            self._tally().declined += 1
        await client.command("order.cancel", {"order_id": order_id}, timeout=self._timeout_s)

    async def _give_up(self, client: ReconnectingDevice, order_id: int) -> None:
        """A kiosk that could not get its order paid cancels it, as its customer walks away."""
        try:
            await client.command("order.cancel", {"order_id": order_id}, timeout=self._timeout_s)
        except Exception as exc:
            # A payment still in progress (conflict) or the device gone: the server's deadlines end the order.
            self._error(exc)
