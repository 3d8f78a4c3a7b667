"""Moving an order through its states, with everything that goes with each move.

Used by the kiosk, kitchen and staff commands and by the payment-timeout worker alike:
the move is one conditional UPDATE (`status` must still be what was read), so two
devices acting on one order at once cannot both succeed; cancelling gives the order's
stock back; paying or cancelling ends the order's payment deadline; and the events of
the move are emitted in the same transaction (server/payloads/order.py, `announce`; a
kitchen station's in server/orders/station_progress.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels import names
from channels.unit_of_work import Emit
from persistence import deadlines, pos_deliveries, stock
from persistence.base import table, utcnow
from persistence.enums import DeadlineKind, OrderStatus, PaymentStatus
from persistence.order_records import OrderRecord, order_status, read_order, update_order
from persistence.prepared import Prepared, one_of
from persistence.tables import Order, Payment
from server.domain.order_states import SOURCE, IllegalTransition, OrderAction, next_status
from server.errors import ApiError
from server.orders import station_progress
from server.payloads.menu import closed_now, stock_changed
from server.payloads.order import announce
from server.settings import Settings

# The moment each status is reached is kept on the order.
_STAMP: dict[OrderStatus, str] = {
    OrderStatus.PAID: "paid_at",
    OrderStatus.PREPARING: "started_at",
    OrderStatus.READY: "ready_at",
    OrderStatus.COMPLETED: "completed_at",
    OrderStatus.CANCELLED: "cancelled_at",
    OrderStatus.REFUNDED: "refunded_at",
}


_PAYMENTS = table(Payment)
_IN_FLIGHT = Prepared(
    select(_PAYMENTS.c.id)
    .where(
        _PAYMENTS.c.order_id == bindparam("order_id"),
        one_of(_PAYMENTS.c.status, (PaymentStatus.PENDING, PaymentStatus.PROCESSING)),
    )
    .limit(1)
)


async def payment_in_flight(session: AsyncSession, order_id: int) -> int | None:
    """The id of the order's payment that is pending or processing, if any (at most one per terminal, usually none)."""
    payment_id: int | None = await _IN_FLIGHT.scalar(session, {"order_id": order_id})
    return payment_id


async def lock_order(session: AsyncSession, order_id: int, *, if_free: bool = False) -> OrderRecord | None:
    """The order with its lines, read in one query, its row locked until the transaction ends.

    `if_free`: None at once when another transaction holds the order, instead of waiting for it.
    """
    return await read_order(session, order_id, if_free=if_free)


@cache
def _move_statement(columns: tuple[str, ...]) -> Prepared:
    """The conditional UPDATE of a move that sets these columns (one statement per kind of move)."""
    values: dict[str, Any] = {column: bindparam(f"set_{column}") for column in columns}
    orders = table(Order)
    return Prepared(
        update(orders)
        .where(orders.c.id == bindparam("order_id"), orders.c.status == bindparam("before"))
        .values(values)
        .returning(orders.c.version)
    )


def _changes(before: OrderStatus, after: OrderStatus, now: datetime) -> dict[str, Any]:
    """The columns a move from `before` to `after` sets: the status and the moment it was reached."""
    values: dict[str, Any] = {"status": after, "updated_at": now}
    if after == OrderStatus.PREPARING and before == OrderStatus.READY:
        values["ready_at"] = None  # recalled: not ready any more
    else:
        values[_STAMP[after]] = now
    return values


# The moves that change nothing but the order: the kitchen's.
_ORDER_ONLY = frozenset({OrderAction.START, OrderAction.READY, OrderAction.RECALL, OrderAction.COMPLETE})


async def advance(
    session: AsyncSession, order_id: int, action: OrderAction, emit: Emit, *, scope: Mapping[str, Any]
) -> OrderRecord | None:
    """Apply a kitchen `action` in one conditional UPDATE, without reading the order first: when the order is in the
    action's source state and its columns hold `scope` (the sender's branch or device). None when it is not, or
    does not exist; then `move` after a read says which (`not_found` or `conflict`)."""
    if action not in _ORDER_ONLY:
        raise ValueError(f"{action} changes more than the order: read it and move it")
    before = SOURCE[action]
    after = next_status(before, action)
    order = await update_order(session, order_id, _changes(before, after, utcnow()), where={"status": before, **scope})
    if order is not None:
        announce(emit, order, recalled=action == OrderAction.RECALL, previous=before)
        await station_progress.after_move(session, emit, order, recalled=action == OrderAction.RECALL)
    return order


def conflict(order: OrderRecord, message: str) -> ApiError:
    """`conflict` for a move the order's state does not allow."""
    return ApiError("conflict", message, {"order_id": order.id, "status": order.status.value})


async def move(
    session: AsyncSession, order: OrderRecord, action: OrderAction, emit: Emit, *, reason: str | None = None
) -> OrderRecord:
    """Apply `action` to `order` and emit its events; `conflict` when its state does not allow it (any more)."""
    before = order.status
    try:
        after = next_status(before, action)
    except IllegalTransition as exc:
        raise conflict(order, str(exc)) from None
    now = utcnow()
    values = _changes(before, after, now)
    if after == OrderStatus.CANCELLED:
        values["cancel_reason"] = reason
    params = {"order_id": order.id, "before": before, **{f"set_{column}": value for column, value in values.items()}}
    version = await _move_statement(tuple(values)).scalar(session, params)
    if version is None:
        # Someone else moved it between our read and this update.
        order.status = await order_status(session, order.id) or before
        raise conflict(order, f"the order changed meanwhile; it is now {order.status.value}")
    values["version"] = version  # raised by the UPDATE itself (the column's onupdate)
    for key, value in values.items():
        # What the UPDATE wrote, without reading the row back.
        setattr(order, key, value)
    if after in (OrderStatus.PAID, OrderStatus.CANCELLED):
        await deadlines.finish(session, DeadlineKind.ORDER_PAYMENT, order.id, now)
    if after == OrderStatus.CANCELLED:
        await give_back_stock(session, order, emit)
    announce(emit, order, recalled=action == OrderAction.RECALL, previous=before)
    await station_progress.after_move(session, emit, order, recalled=action == OrderAction.RECALL)
    return order


async def give_back_stock(session: AsyncSession, order: OrderRecord, emit: Emit) -> None:
    """Return the order's quantities to the items that count stock (a combo's components too), and tell the
    branch's kiosks."""
    wanted: dict[int, int] = {}
    for line in order.lines:
        for item_id in (line.item_id, *(int(c["item_id"]) for c in line.components)):
            wanted[item_id] = wanted.get(item_id, 0) + line.qty
    released = await stock.release(session, order.branch_id, wanted)
    # Given back after its daypart ended, an item is still not orderable.
    closed = await closed_now(session, order.branch_id, [level.item_id for level in released]) if released else set()
    for level in released:
        emit(
            names.branch_menu(order.branch_id),
            "stock.changed",
            stock_changed(order.branch_id, level.item_id, level.available, level.stock, level.item_id not in closed),
        )


async def mark_order_paid(session: AsyncSession, order: OrderRecord, emit: Emit, settings: Settings) -> OrderRecord:
    """Move the order to paid (kitchen and board hear it) and queue it for the POS when there is one."""
    await move(session, order, OrderAction.PAY, emit)
    _queue_for_pos(session, order.id, settings)
    return order


async def pay_if_awaited(session: AsyncSession, order_id: int, emit: Emit, settings: Settings) -> OrderRecord | None:
    """`mark_order_paid` without reading the order first: paid by one conditional UPDATE when it awaits payment;
    None, changing nothing, when it does not (cancelled, or paid already)."""
    before, now = OrderStatus.AWAITING_PAYMENT, utcnow()
    changes = _changes(before, OrderStatus.PAID, now)
    finish = (DeadlineKind.ORDER_PAYMENT, now)
    order = await update_order(session, order_id, changes, where={"status": before}, finish=finish)
    if order is None:
        return None
    announce(emit, order, previous=before)
    await station_progress.after_move(session, emit, order)
    _queue_for_pos(session, order_id, settings)
    return order


def _queue_for_pos(session: AsyncSession, order_id: int, settings: Settings) -> None:
    if settings.POS_API_URL:
        pos_deliveries.enqueue(session, order_id)
