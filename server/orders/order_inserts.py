"""A placed order written by prepared statements (persistence/prepared.py): its row, its lines, and on PostgreSQL
the writes that go with it, in one statement.

Placing a cart writes five things once its stock is reserved: the cart (ordered), the
branch's next number for the day, the order, its lines, its payment deadline. On
PostgreSQL they are one statement of data-modifying CTEs: the order takes its number from
the number's upsert (RETURNING), the lines and the deadline take the order's id from the
order's INSERT (RETURNING), and the cart is updated alongside. Sub-statements all see the
snapshot the statement started with, so no part reads another's table, only its RETURNING;
the upsert's ON CONFLICT still waits for a concurrent placing of the branch and takes the
number after it (as it does alone), and the lines' foreign key to the order is checked at
the end of the statement, once the order exists. SQLite has no data-modifying CTEs: the
same statements run one after the other there.

The lines' INSERT returns each line whole, so no line is matched to its id by position;
they are listed by id, as a read of the order lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, insert, null, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from persistence import deadlines, order_numbers
from persistence.base import table
from persistence.enums import DeadlineKind
from persistence.order_records import OrderLineRecord, OrderRecord
from persistence.prepared import Prepared
from persistence.tables import Deadline, Order, OrderLine
from server.orders import cart_rows
from server.orders.cart_records import CartRecord

_ORDERS, _LINES, _DEADLINES = table(Order), table(OrderLine), table(Deadline)
_ORDER_NAMES = tuple(f.name for f in fields(OrderRecord) if f.name != "lines")
_ORDER_COLUMNS = tuple(_ORDERS.c[name] for name in _ORDER_NAMES)
# A line's columns but its id and its order's.
_LINE_NAMES = (
    "item_id",
    "name",
    "qty",
    "unit_price",
    "options",
    "line_total",
    "tax_rate_bp",
    "note",
    "components",
    "station",
    "display_name",
    "display_options",
    "display_components",
)
_LINE_COLUMNS = tuple(_LINES.c[f.name] for f in fields(OrderLineRecord))


@dataclass(frozen=True)
class NewLine:
    """A line of the order to write: the columns of `OrderLine` but its id and its order's."""

    item_id: int
    name: str
    qty: int
    unit_price: int
    options: list[dict[str, Any]]
    line_total: int
    tax_rate_bp: int
    note: str | None
    # A combo's components as priced (server/payloads/cart.py, `LineComponent`); [] for any other item.
    components: list[dict[str, Any]]
    station: str | None = None
    # The name and options in the order's locale (`name` and `options` are in the kitchen's).
    display_name: str | None = None
    display_options: list[dict[str, Any]] | None = None
    display_components: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Placed:
    """What placing wrote: the order with its lines, and the cart as it now is (ordered)."""

    order: OrderRecord
    cart: CartRecord


def _order_insert(number: ColumnElement[Any]) -> Insert:
    """INSERT the order (`o_<column>` for each column but its id and its `number`) RETURNING it."""
    values: dict[str, Any] = {
        name: bindparam(f"o_{name}", type_=_ORDERS.c[name].type) for name in _ORDER_NAMES if name != "id"
    }
    return insert(_ORDERS).values({**values, "number": number}).returning(*_ORDER_COLUMNS)


def _lines_insert(count: int, order_id: ColumnElement[Any]) -> Insert:
    """INSERT `count` lines of one order in one statement (`<column>_<n>` for line n) RETURNING their ids."""
    rows = [
        {"order_id": order_id} | {name: bindparam(f"{name}_{n}", type_=_LINES.c[name].type) for name in _LINE_NAMES}
        for n in range(count)
    ]
    return insert(_LINES).values(rows).returning(*_LINE_COLUMNS)


_INSERT_ORDER = Prepared(_order_insert(bindparam("o_number", type_=_ORDERS.c.number.type)))


@functools.cache
def _insert_lines(count: int) -> Prepared:
    """The lines' INSERT (SQLite) for an order of `count` lines."""
    return Prepared(_lines_insert(count, bindparam("order_id", type_=_LINES.c.order_id.type)))


@functools.cache
def _place(count: int) -> Prepared:
    """Everything placing writes, in one statement (PostgreSQL), for an order of `count` lines: one row per line,
    each with the order's columns, the cart's new version and `updated_at`, and a line id."""
    number = order_numbers.take_number(postgresql_insert).cte("number")
    order = _order_insert(select(number.c.last_number).scalar_subquery()).cte("placed")
    order_id = select(order.c.id).scalar_subquery()
    lines = _lines_insert(count, order_id).cte("lines")
    cart = cart_rows.ORDER_CART.cte("cart")
    due_at = bindparam("due_at", type_=_DEADLINES.c.due_at.type)
    deadline = (
        postgresql_insert(_DEADLINES)
        .values(kind=bindparam("deadline_kind", type_=_DEADLINES.c.kind.type), ref_id=order_id, due_at=due_at)
        .on_conflict_do_update(
            index_elements=[_DEADLINES.c.kind, _DEADLINES.c.ref_id], set_={"due_at": due_at, "done_at": null()}
        )
        .cte("deadline")
    )
    statement = select(
        *order.c,
        cart.c.version.label("cart_version"),
        cart.c.updated_at.label("cart_updated_at"),
        *(lines.c[column.name].label(f"line_{column.name}") for column in _LINE_COLUMNS),
    ).add_cte(deadline)
    return Prepared(statement)


async def place(
    session: AsyncSession,
    cart: CartRecord,
    order: Mapping[str, Any],
    lines: Sequence[NewLine],
    business_date: date,
    now: datetime,
    due_at: datetime,
) -> Placed:
    """Write the placed order of the locked `cart`: `order` holds its columns but `id`, `number`, `business_date`,
    `created_at`, `updated_at` and `version`. The cart is marked ordered at `now`, the order takes the branch's next
    number for `business_date` and gets a payment deadline at `due_at`."""
    values = {f"o_{name}": value for name, value in order.items()}
    values |= {"o_business_date": business_date, "o_created_at": now, "o_updated_at": now, "o_version": 1}
    for n, line in enumerate(lines):
        values |= {f"{name}_{n}": getattr(line, name) for name in _LINE_NAMES}
    numbered = {"b_branch_id": order["branch_id"], "b_business_date": business_date}
    if session.get_bind().dialect.name == "postgresql":
        params = values | numbered | {"cart_id": cart.id, "now": now, "deadline_kind": DeadlineKind.ORDER_PAYMENT}
        rows = await _place(len(lines)).rows(session, params | {"due_at": due_at})
        first = rows[0]
        written = OrderRecord(*first[: len(_ORDER_NAMES)])
        ordered = cart_rows.as_ordered(cart, first.cart_version, first.cart_updated_at)
        written_lines = [OrderLineRecord(*row[-len(_LINE_COLUMNS) :]) for row in rows]
    else:
        # The cart first, then the number: the number's row stays locked until commit (see order_numbers).
        ordered = await cart_rows.mark_ordered(session, cart, now)
        number = await order_numbers.next_number(session, order["branch_id"], business_date)
        row = await _INSERT_ORDER.first(session, values | {"o_number": number})
        assert row is not None  # an INSERT ... RETURNING returns its row
        written = OrderRecord(*row)
        rows = await _insert_lines(len(lines)).rows(session, values | {"order_id": written.id})
        written_lines = [OrderLineRecord(*row) for row in rows]
        await deadlines.schedule(session, DeadlineKind.ORDER_PAYMENT, written.id, due_at)
    # Each line as written, whatever order the INSERT gave ids in; listed by id, as a read of the order lists them.
    written.lines = sorted(written_lines, key=lambda line: line.id)
    return Placed(written, ordered)
