"""Orders as plain records, read with their lines (and locked) in one prepared statement.

The commands that move an order (kitchen, payment, cancel, refund, the payment timeout)
read it, check the move, update it with one conditional UPDATE and describe it; a kitchen
move, which needs nothing else, is the conditional UPDATE alone (`update_order`). None of
that needs the ORM's tracked objects, whose loading cost more than the statements; a
record has the same attribute names as the mapped `Order` and `OrderLine`, so every
description of an order (server/payloads/order.py) takes either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import deadlines
from persistence.base import table
from persistence.enums import DeadlineKind, OrderStatus, ServiceMode
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
    tax_rate_bp: int | None
    note: str | None
    components: list[dict[str, Any]]
    station: str | None = None
    # In the order's locale; None: as `name` and `options`, which are in the kitchen's (persistence/tables/orders.py).
    display_name: str | None = None
    display_options: list[dict[str, Any]] | None = None
    display_components: list[dict[str, Any]] | None = None


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
    service_mode: ServiceMode
    locale: str | None
    subtotal: int
    tax: int
    total: int
    taxes: list[dict[str, Any]]
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


def _locked(*, skip_locked: bool = False) -> Prepared:
    # One row per line (one row without line columns for an order without lines). Only the order's row is locked:
    # PostgreSQL cannot lock the outer-joined side, and lines never change after placement.
    statement: Select[Any] = (
        select(*_ORDER_COLUMNS, *(column.label(f"line_{column.name}") for column in _LINE_COLUMNS))
        .outerjoin(_LINES, _LINES.c.order_id == _ORDERS.c.id)
        .where(_ORDERS.c.id == bindparam("order_id"))
        .order_by(_LINES.c.id)
    )
    return Prepared(statement.with_for_update(of=_ORDERS, skip_locked=skip_locked))


_LOCK, _LOCK_IF_FREE = _locked(), _locked(skip_locked=True)
_STATUS = Prepared(select(_ORDERS.c.status).where(_ORDERS.c.id == bindparam("order_id")))
_READ_LINES = Prepared(select(*_LINE_COLUMNS).where(_LINES.c.order_id == bindparam("order_id")).order_by(_LINES.c.id))


@cache
def _update(
    columns: tuple[str, ...], conditions: tuple[str, ...], finish: DeadlineKind | None, postgresql: bool
) -> tuple[Prepared, Prepared | None]:
    """The UPDATE of `columns` where the order's `conditions` hold, giving the order as it now is: on PostgreSQL one
    statement with its lines (the UPDATE in a CTE) finishing the order's deadline of kind `finish` (another CTE),
    elsewhere the UPDATE ... RETURNING and a read of the lines (the caller finishes the deadline)."""
    changed = (
        update(_ORDERS)
        .where(
            _ORDERS.c.id == bindparam("order_id"), *(_ORDERS.c[name] == bindparam(f"is_{name}") for name in conditions)
        )
        .values({name: bindparam(f"set_{name}") for name in columns})
        .returning(*_ORDER_COLUMNS)
    )
    if not postgresql:
        return Prepared(changed), _READ_LINES
    moved = changed.cte("moved")
    lines = select(*moved.c, *(column.label(f"line_{column.name}") for column in _LINE_COLUMNS))
    if finish is not None:
        lines = lines.add_cte(deadlines.finished_with(finish, moved).cte("finished"))
    return Prepared(lines.outerjoin(_LINES, _LINES.c.order_id == moved.c.id).order_by(_LINES.c.id)), None


async def update_order(
    session: AsyncSession,
    order_id: int,
    values: Mapping[str, Any],
    *,
    where: Mapping[str, Any],
    finish: tuple[DeadlineKind, datetime] | None = None,
) -> OrderRecord | None:
    """Set `values` on the order when its columns hold `where` (its status, say): the order as it now is, with its
    lines, or None when it does not (or does not exist). `finish`: the order's deadline of that kind is finished at
    that moment too, when the order was changed. One round trip on PostgreSQL, two (three to finish) on SQLite."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    kind, done_at = finish or (None, None)
    statement, read_lines = _update(tuple(values), tuple(where), kind, postgresql)
    params: dict[str, Any] = {"order_id": order_id} | ({} if kind is None else {"done_at": done_at})
    params |= {f"set_{name}": value for name, value in values.items()}
    params |= {f"is_{name}": value for name, value in where.items()}
    rows = await statement.rows(session, params)
    if not rows:
        return None
    if read_lines is None:
        return _record(rows)
    order = OrderRecord(*rows[0])
    order.lines = [OrderLineRecord(*row) for row in await read_lines.rows(session, {"order_id": order_id})]
    if kind is not None and done_at is not None:
        await deadlines.finish(session, kind, order_id, done_at)
    return order


def _record(rows: list[Any]) -> OrderRecord:
    """An order from rows of its columns followed by one line's (NULL for an order without lines)."""
    count = len(_ORDER_COLUMNS)
    order = OrderRecord(*rows[0][:count])
    order.lines = [OrderLineRecord(*row[count:]) for row in rows if row[count] is not None]
    return order


async def read_order(session: AsyncSession, order_id: int, *, if_free: bool = False) -> OrderRecord | None:
    """The order with its lines, or None, its row locked until the transaction ends (`if_free`: None at once when
    another transaction holds it, instead of waiting)."""
    statement = _LOCK_IF_FREE if if_free else _LOCK
    rows = await statement.rows(session, {"order_id": order_id})
    return _record(rows) if rows else None


async def order_status(session: AsyncSession, order_id: int) -> OrderStatus | None:
    """The order's status as committed now (or as this transaction changed it), None when there is no such order."""
    status: OrderStatus | None = await _STATUS.scalar(session, {"order_id": order_id})
    return status
