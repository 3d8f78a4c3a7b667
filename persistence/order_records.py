"""Orders as plain records, read with their lines (and locked) in one prepared statement.

The commands that move an order (kitchen, payment, cancel, refund, the payment timeout)
read it, check the move, update it with one conditional UPDATE and describe it. None of
that needs the ORM's tracked objects, whose loading cost more than the statements; a
record has the same attribute names as the mapped `Order` and `OrderLine`, so every
description of an order (server/payloads/order.py) takes either.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table
from persistence.enums import OrderStatus
from persistence.prepared import Prepared
from persistence.tables import Order, OrderLine


@dataclass(slots=True)
class OrderLineRecord:
    """One frozen line of an order."""

    id: int
    order_id: int
    item_id: int
    name: str
    qty: int
    unit_price: int
    options: list[dict[str, Any]]
    line_total: int


@dataclass(slots=True)
class OrderRecord:
    """An order as its row holds it, with its lines: the columns of `persistence.tables.Order`."""

    id: int
    branch_id: int
    device_id: int | None
    cart_id: int | None
    customer_id: int | None
    customer_name: str | None
    number: int
    business_date: date
    status: OrderStatus
    currency: str
    subtotal: int
    tax: int
    total: int
    paid_at: datetime | None
    started_at: datetime | None
    ready_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    lines: list[OrderLineRecord] = field(default_factory=list)


_ORDERS, _LINES = table(Order), table(OrderLine)
_ORDER_COLUMNS = tuple(_ORDERS.c[f.name] for f in fields(OrderRecord) if f.name != "lines")
_LINE_COLUMNS = tuple(_LINES.c[f.name] for f in fields(OrderLineRecord))


def _read(*, lock: bool = False, skip_locked: bool = False) -> Prepared:
    # One row per line (one row without line columns for an order without lines). Only the order's row is locked:
    # PostgreSQL cannot lock the outer-joined side, and lines never change after placement.
    statement: Select[Any] = (
        select(*_ORDER_COLUMNS, *(column.label(f"line_{column.name}") for column in _LINE_COLUMNS))
        .outerjoin(_LINES, _LINES.c.order_id == _ORDERS.c.id)
        .where(_ORDERS.c.id == bindparam("order_id"))
        .order_by(_LINES.c.id)
    )
    if lock:
        statement = statement.with_for_update(of=_ORDERS, skip_locked=skip_locked)
    return Prepared(statement)


_READ, _LOCK, _LOCK_IF_FREE = _read(), _read(lock=True), _read(lock=True, skip_locked=True)
_STATUS = Prepared(select(_ORDERS.c.status).where(_ORDERS.c.id == bindparam("order_id")))


async def read_order(
    session: AsyncSession, order_id: int, *, lock: bool = False, if_free: bool = False
) -> OrderRecord | None:
    """The order with its lines, or None; `lock`: its row locked until the transaction ends (`if_free`: None at once
    when another transaction holds it, instead of waiting)."""
    statement = (_LOCK_IF_FREE if if_free else _LOCK) if lock else _READ
    rows = await statement.rows(session, {"order_id": order_id})
    if not rows:
        return None
    count = len(_ORDER_COLUMNS)
    order = OrderRecord(*rows[0][:count])
    order.lines = [OrderLineRecord(*row[count:]) for row in rows if row[count] is not None]
    return order


async def order_status(session: AsyncSession, order_id: int) -> OrderStatus | None:
    """The order's status as committed now (or as this transaction changed it), None when there is no such order."""
    status: OrderStatus | None = await _STATUS.scalar(session, {"order_id": order_id})
    return status
