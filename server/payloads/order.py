"""An order as every device and channel sees it, and which channels hear of each change.

One shape everywhere (replies, events, snapshots), so a client applies any of them as an
upsert by `id`. Who hears what (PROTOCOL.md "Channels"):

- the kiosk that placed it (`device:{d}`) and staff (`branch:{b}:orders`): every change,
  as `order.placed`, `order.paid`, `order.preparing`, `order.ready`, `order.recalled`,
  `order.completed`, `order.cancelled`, `order.refunded`;
- the kitchen (`branch:{b}:kitchen`): from payment on, with `order.queued` for a newly
  paid order and `order.cancelled` for one taken back (refunded);
- the order board (`branch:{b}:board`): `board.updated` whenever the order's number moves
  between its columns: `preparing` from payment until ready, `ready`, then off (null).
"""

from __future__ import annotations

from typing import Any

from channels import names
from channels.unit_of_work import Emit
from persistence.base import rfc3339
from persistence.enums import OrderStatus
from persistence.tables import Order

# What the order board shows for an order in each status; None: not on the board.
BOARD_COLUMN: dict[OrderStatus, str | None] = {
    OrderStatus.AWAITING_PAYMENT: None,
    OrderStatus.PAID: "preparing",
    OrderStatus.PREPARING: "preparing",
    OrderStatus.READY: "ready",
    OrderStatus.COMPLETED: None,
    OrderStatus.CANCELLED: None,
    OrderStatus.REFUNDED: None,
}

# The event for the kiosk and staff, by the status an order has just reached.
_EVENT: dict[OrderStatus, str] = {
    OrderStatus.AWAITING_PAYMENT: "order.placed",
    OrderStatus.PAID: "order.paid",
    OrderStatus.PREPARING: "order.preparing",
    OrderStatus.READY: "order.ready",
    OrderStatus.COMPLETED: "order.completed",
    OrderStatus.CANCELLED: "order.cancelled",
    OrderStatus.REFUNDED: "order.refunded",
}

# The kitchen's name for a change where it differs from the kiosk's.
_KITCHEN_EVENT: dict[OrderStatus, str] = {OrderStatus.PAID: "order.queued", OrderStatus.REFUNDED: "order.cancelled"}


def _moment(value: Any) -> str | None:
    return rfc3339(value) if value is not None else None


def order_data(order: Order) -> dict[str, Any]:
    """The order with its frozen lines and the moments it changed state."""
    return {
        "id": order.id,
        "number": order.number,
        "business_date": order.business_date.isoformat(),
        "status": order.status.value,
        "branch_id": order.branch_id,
        "device_id": order.device_id,
        "cart_id": order.cart_id,
        "customer_name": order.customer_name,
        "currency": order.currency,
        "subtotal": order.subtotal,
        "tax": order.tax,
        "total": order.total,
        "lines": [
            {
                "id": line.id,
                "item_id": line.item_id,
                "name": line.name,
                "qty": line.qty,
                "unit_price": line.unit_price,
                "options": line.options,
                "line_total": line.line_total,
            }
            for line in order.lines
        ],
        "created_at": _moment(order.created_at),
        "paid_at": _moment(order.paid_at),
        "started_at": _moment(order.started_at),
        "ready_at": _moment(order.ready_at),
        "completed_at": _moment(order.completed_at),
        "cancelled_at": _moment(order.cancelled_at),
        "cancel_reason": order.cancel_reason,
        "refunded_at": _moment(order.refunded_at),
    }


def board_entry(order: Order) -> dict[str, Any]:
    """`board.updated` data: the order's number and the board column it now shows in (null: off the board)."""
    return {"order_id": order.id, "number": order.number, "column": BOARD_COLUMN[order.status]}


def announce(emit: Emit, order: Order, *, recalled: bool = False, previous: OrderStatus | None = None) -> None:
    """Emit the events of `order` having just reached its status (`recalled`: back to preparing from ready)."""
    data = order_data(order)
    event = "order.recalled" if recalled else _EVENT[order.status]
    emit(names.branch_orders(order.branch_id), event, data)
    if order.device_id is not None:
        emit(names.device(order.device_id), event, data)
    in_kitchen = order.status in (OrderStatus.PAID, OrderStatus.PREPARING, OrderStatus.READY, OrderStatus.COMPLETED)
    if in_kitchen or (order.status == OrderStatus.REFUNDED):
        emit(names.branch_kitchen(order.branch_id), _KITCHEN_EVENT.get(order.status, event), data)
    before = BOARD_COLUMN[previous] if previous is not None else None
    if BOARD_COLUMN[order.status] != before:
        emit(names.branch_board(order.branch_id), "board.updated", board_entry(order))
