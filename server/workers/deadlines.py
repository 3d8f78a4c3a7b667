"""Acting on stored deadlines: unpaid orders are cancelled, unanswered payments expire, idle carts expire.

Every instance runs the loop; on PostgreSQL a due deadline is claimed with SKIP LOCKED,
so exactly one instance acts on it, and the moves themselves are conditional, so acting
twice would change nothing. The payment or order behind a deadline is locked only if no
other transaction holds it: a payment result (or an order being paid) holds its row and
then finishes the same deadline, so waiting for it would deadlock; its deadline is left
open for the next pass. Because deadlines are rows, a restart or a crash only
delays them until the next instance looks.

Each deadline is acted on in a transaction of its own. Cancelling an order gives its
stock back item by item in id order, as orders being placed take it; two cancels in one
transaction would give back out of that order (item 5 of one, then item 2 of the next)
and could deadlock with an order taking items 2 and 5.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from channels import names
from channels.relay import Relay
from channels.unit_of_work import Emit, UnitOfWork
from persistence import deadlines
from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import CartStatus, DeadlineKind, OrderStatus, PaymentStatus
from persistence.order_records import order_status
from persistence.payments import IN_FLIGHT, lock_payment, save_payment
from persistence.tables import Payment
from server.domain.order_states import OrderAction
from server.errors import ApiError
from server.orders import cart_rows
from server.orders.cart_pricing import price_cart
from server.orders.order_changes import lock_order, move, payment_in_flight
from server.payloads.payment import announce_payment
from server.settings import Settings
from server.workers.periodic import Periodic

log = logging.getLogger("server.deadlines")

INTERVAL_S = 1.0
BATCH = 100
HANDLED = (DeadlineKind.ORDER_PAYMENT, DeadlineKind.PAYMENT)


class DeadlineWorker:
    """Checks for due deadlines every second and acts on them, publishing what that emits."""

    def __init__(self, db: Database, relay: Relay, settings: Settings) -> None:
        self._db = db
        self._relay = relay
        self._settings = settings
        self._loop = Periodic("deadlines", self.run_once, INTERVAL_S, log)

    async def run_once(self, now: datetime | None = None) -> int:
        """Act on everything due by `now`; returns how many orders, payments and carts it changed."""
        at = now or utcnow()
        async with self._db.session() as session:
            due = await deadlines.due(session, at, BATCH, kinds=HANDLED)
        acted = 0
        for deadline_id in due:
            acted += await self._in_transaction(partial(self._deadline, deadline_id=deadline_id, now=at))
        return acted + await self._in_transaction(partial(self._expire_carts, now=at))

    async def _in_transaction(self, work: Callable[[AsyncSession, Emit], Awaitable[int]]) -> int:
        """Run `work` in a transaction of its own, then publish what it emitted."""
        async with UnitOfWork(self._db, self._relay) as uow:
            return await work(uow.session, uow.emit)

    async def _deadline(self, session: AsyncSession, emit: Emit, deadline_id: int, now: datetime) -> int:
        deadline = await deadlines.claim(session, deadline_id, now)
        if deadline is None:
            return 0  # done meanwhile, or another instance is acting on it
        if deadline.kind == DeadlineKind.PAYMENT:
            return await self._payment_unanswered(session, deadline.ref_id, emit, now)
        return await self._order_unpaid(session, deadline.ref_id, emit, now)

    async def _order_unpaid(self, session: AsyncSession, order_id: int, emit: Emit, now: datetime) -> int:
        order = await lock_order(session, order_id, if_free=True)
        if order is None and await order_status(session, order_id) is not None:
            return 0  # being paid or cancelled right now (see the module docstring): the next pass looks again
        if order is None or order.status != OrderStatus.AWAITING_PAYMENT:
            await deadlines.finish(session, DeadlineKind.ORDER_PAYMENT, order_id, now)
            return 0
        if await payment_in_flight(session, order_id) is not None:
            # PROTOCOL.md: an order with a payment in flight is never cancelled by the timeout; look again later.
            later = now + timedelta(seconds=self._settings.PAYMENT_TIMEOUT_S)
            await deadlines.schedule(session, DeadlineKind.ORDER_PAYMENT, order_id, later)
            return 0
        try:
            await move(session, order, OrderAction.CANCEL, emit, reason="payment_timeout")
        except ApiError:  # moved meanwhile: nothing left to do
            await deadlines.finish(session, DeadlineKind.ORDER_PAYMENT, order_id, now)
            return 0
        return 1

    async def _payment_unanswered(self, session: AsyncSession, payment_id: int, emit: Emit, now: datetime) -> int:
        payment = await lock_payment(session, payment_id, if_free=True)
        if payment is None and await session.get(Payment, payment_id) is not None:
            return 0  # its result is being recorded right now: that finishes the deadline, or the next pass does
        await deadlines.finish(session, DeadlineKind.PAYMENT, payment_id, now)
        if payment is None or payment.status not in IN_FLIGHT:
            return 0
        # No result in time: the kiosk may start another payment; a late approval is still recorded.
        payment.status, payment.finished_at = PaymentStatus.EXPIRED, now
        await save_payment(session, payment, at=utcnow())
        announce_payment(emit, payment)
        return 1

    async def _expire_carts(self, session: AsyncSession, emit: Emit, now: datetime) -> int:
        cutoff = now - self._settings.cart_idle_timeout
        carts = cart_rows.CARTS.c
        idle = await cart_rows.with_lines(
            session,
            (
                await session.execute(
                    update(cart_rows.CARTS)
                    .where(carts.status == CartStatus.OPEN, carts.updated_at < cutoff)
                    .values(status=CartStatus.EXPIRED, updated_at=now)
                    .returning(*cart_rows.CART_COLUMNS)
                )
            ).all(),
        )
        for cart in idle:
            priced = await price_cart(session, cart)
            emit(names.device(cart.device_id), "cart.updated", priced.data(self._settings.cart_idle_timeout))
        return len(idle)

    def start(self) -> None:
        """Start the background loop."""
        self._loop.start()

    async def close(self) -> None:
        """Stop the loop (a check in progress is cancelled and rolled back)."""
        await self._loop.close()
