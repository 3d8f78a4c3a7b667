"""Carts as plain records (server/orders/cart_records.py), read and written by prepared statements
(persistence/prepared.py).

A cart command reads one cart, changes a line or two and prices the cart: work that does
not need tracked ORM objects. The cart's columns, what pricing needs of its branch, of its
known customer and the catalogue's version are read in the cart's own statement; its
lines with how the branch offers their items now (on or 86'd, stock), read after the cart
is locked. A combo line's components are items too: their levels are read in one statement
more, only for carts that hold (or are about to get) a combo.

Every statement that changes a cart row sets `updated_at`; its `version` is raised by the
UPDATE itself (persistence/base.py, `Versioned`) and read back in the same statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, bindparam, delete, insert, literal_column, null, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table
from persistence.enums import CartStatus, ServiceMode
from persistence.prepared import Prepared
from persistence.stock import Level, levels_of
from persistence.tables import Branch, Cart, CartLine, ItemAvailability, KnownCustomer
from server.orders import catalogue
from server.orders.cart_records import CartLineRecord, CartRecord

CARTS, _LINES, _OFFERS = table(Cart), table(CartLine), table(ItemAvailability)
_BRANCH, _CUSTOMER, _OFFER = table(Branch).c, table(KnownCustomer).c, _OFFERS.c
_CART, _LINE = CARTS.c, _LINES.c


def _looked_up(column: Column[Any], key: str, name: str) -> ColumnElement[Any]:
    """`column` of the row whose id is the cart's `key`, as a subquery written out: SQLAlchemy renders a correlated
    subquery in RETURNING without its correlation."""
    other = column.table.name
    sql = f"(SELECT {other}.{column.name} FROM {other} WHERE {other}.id = carts.{key})"
    return literal_column(sql, column.type).label(name)


# What each statement reading a cart returns. The branch's and the customer's fields are subqueries, not joins: an
# UPDATE ... RETURNING can name only its own table on SQLite. A branch as it was a moment before is as good as one
# read after the lock.
CART_COLUMNS: tuple[ColumnElement[Any], ...] = (
    _CART.id,
    _CART.version,
    _CART.status,
    _CART.branch_id,
    _CART.device_id,
    _CART.customer_id,
    _CART.customer_phone,
    _CART.updated_at,
    _CART.service_mode,
    _looked_up(_BRANCH.currency, "branch_id", "currency"),
    _looked_up(_BRANCH.tax_rate_bp, "branch_id", "tax_rate_bp"),
    _looked_up(_BRANCH.tax_rates, "branch_id", "tax_rates"),
    _looked_up(_BRANCH.service_modes, "branch_id", "service_modes"),
    _looked_up(_BRANCH.timezone, "branch_id", "timezone"),
    _looked_up(_CUSTOMER.name, "customer_id", "customer_name"),
    catalogue.CURRENT_VERSION,
    _CART.locale,
    _looked_up(_BRANCH.default_locale, "branch_id", "default_locale"),
    _looked_up(_BRANCH.locales, "branch_id", "locales"),
    _looked_up(_BRANCH.kitchen_locale, "branch_id", "kitchen_locale"),
)
_BY_ID = _CART.id == bindparam("cart_id")

_CREATE = Prepared(
    insert(CARTS)
    .values(
        branch_id=bindparam("branch_id"),
        device_id=bindparam("device_id"),
        customer_id=bindparam("customer_id"),
        customer_phone=bindparam("customer_phone"),
        service_mode=bindparam("service_mode"),
        locale=bindparam("locale"),
        status=CartStatus.OPEN,
        version=1,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(*CART_COLUMNS)
)
# Locks the cart without changing it (order.place: its change comes once everything is checked).
_LOCK = Prepared(select(*CART_COLUMNS).where(_BY_ID).with_for_update(of=CARTS))
# Locks the cart by changing it: a command that changes the cart whatever else it does (or is rolled back) saves
# the separate UPDATE that would raise its version. Unconditional, so a refused cart still comes back to say why.
_TOUCH = Prepared(update(CARTS).where(_BY_ID).values(updated_at=bindparam("now")).returning(*CART_COLUMNS))
_TOUCH_MODE = Prepared(
    update(CARTS)
    .where(_BY_ID)
    .values(updated_at=bindparam("now"), service_mode=bindparam("service_mode"))
    .returning(*CART_COLUMNS)
)
_TOUCH_LOCALE = Prepared(
    update(CARTS).where(_BY_ID).values(updated_at=bindparam("now"), locale=bindparam("locale")).returning(*CART_COLUMNS)
)
_TOUCH_CUSTOMER = Prepared(
    update(CARTS)
    .where(_BY_ID)
    .values(
        updated_at=bindparam("now"),
        customer_id=bindparam("customer_id"),
        customer_phone=bindparam("customer_phone"),
    )
    .returning(*CART_COLUMNS)
)
# The cart placed (`cart_id`, `now`): alone, or a part of the statement that places the order on PostgreSQL.
ORDER_CART = (
    update(CARTS)
    .where(_BY_ID)
    .values(status=CartStatus.ORDERED, updated_at=bindparam("now"))
    .returning(_CART.version, _CART.updated_at)
)
_ORDER = Prepared(ORDER_CART)
# A line with its item's level in the branch (NULL where the branch does not offer it).
_LINE_AND_LEVEL = (
    _LINE.id,
    _LINE.item_id,
    _LINE.qty,
    _LINE.choice_ids,
    _LINE.note,
    _LINE.components,
    _OFFER.item_id.label("offered_id"),
    _OFFER.available,
    _OFFER.stock,
)
# The cart's lines with their levels, and one row more for the level of the item `also` (none when it is null, or not
# offered): one statement for all a command reads.
_LINES_AND_LEVELS = Prepared(
    union_all(
        select(*_LINE_AND_LEVEL)
        .select_from(
            _LINES.outerjoin(_OFFERS, (_OFFER.branch_id == bindparam("branch_id")) & (_OFFER.item_id == _LINE.item_id))
        )
        .where(_LINE.cart_id == bindparam("cart_id")),
        select(
            null().label("id"),
            _OFFER.item_id,
            null().label("qty"),
            null().label("choice_ids"),
            null().label("note"),
            null().label("components"),
            _OFFER.item_id.label("offered_id"),
            _OFFER.available,
            _OFFER.stock,
        ).where(_OFFER.branch_id == bindparam("branch_id"), _OFFER.item_id == bindparam("also")),
    )
)
_ADD_LINE = Prepared(
    insert(_LINES)
    .values(
        cart_id=bindparam("cart_id"),
        item_id=bindparam("item_id"),
        qty=bindparam("qty"),
        choice_ids=bindparam("choice_ids"),
        note=bindparam("note"),
        components=bindparam("components"),
    )
    .returning(_LINE.id)
)
_SET_QTY = Prepared(update(_LINES).where(_LINE.id == bindparam("line_id")).values(qty=bindparam("qty")))
_REMOVE_LINE = Prepared(delete(_LINES).where(_LINE.id == bindparam("line_id")))


def _record(row: Any, lines: list[CartLineRecord], levels: dict[int, Level]) -> CartRecord:
    return CartRecord(
        row.id,
        row.version,
        row.status,
        row.branch_id,
        row.device_id,
        row.customer_id,
        row.customer_phone,
        row.updated_at,
        ServiceMode(row.service_mode),
        row.currency,
        row.tax_rate_bp,
        row.tax_rates,
        row.service_modes,
        row.timezone,
        row.customer_name,
        row.catalogue_version,
        lines,
        levels,
        row.locale,
        row.default_locale,
        row.locales,
        row.kitchen_locale,
    )


async def create_cart(
    session: AsyncSession,
    branch_id: int,
    device_id: int,
    now: datetime,
    customer_id: int | None = None,
    customer_phone: str | None = None,
    *,
    service_mode: ServiceMode = ServiceMode.EAT_IN,
    locale: str | None = None,
) -> CartRecord:
    """A new open cart without lines, shown in `locale` (None: the branch's default)."""
    row = await _CREATE.first(
        session,
        {
            "branch_id": branch_id,
            "device_id": device_id,
            "customer_id": customer_id,
            "customer_phone": customer_phone,
            "service_mode": service_mode,
            "locale": locale,
            "now": now,
        },
    )
    return _record(row, [], {})


Customer = tuple[int | None, str | None]  # a known customer's id and the phone typed; (None, None) for none
NO_CUSTOMER: Customer = (None, None)


async def lock_cart(
    session: AsyncSession,
    cart_id: int,
    now: datetime | None = None,
    customer: Customer | None = None,
    also: int | None = None,
    service_mode: ServiceMode | None = None,
    also_components: Sequence[int] = (),
    locale: str | None = None,
) -> CartRecord | None:
    """The cart with its lines and their items' levels (and item `also`'s), locked until commit; None when there is
    no such cart.

    With `now`, the lock is the cart's change: `updated_at` set to it (and, with `customer`, its id and phone
    attached, or taken off with `NO_CUSTOMER`; or, with `service_mode`, that mode set; or, with `locale`, that
    locale), its version raised. `also_components`: the items of a combo about to be added, whose levels are read
    with the lines' components'. The lines are read after the lock, in a statement of their own: on PostgreSQL a
    read that waited for the lock sees the cart as committed but, in the same statement, the lines as they were
    before it waited.
    """
    if now is None:
        row = await _LOCK.first(session, {"cart_id": cart_id})
    elif service_mode is not None:
        row = await _TOUCH_MODE.first(session, {"cart_id": cart_id, "now": now, "service_mode": service_mode})
    elif locale is not None:
        row = await _TOUCH_LOCALE.first(session, {"cart_id": cart_id, "now": now, "locale": locale})
    elif customer is None:
        row = await _TOUCH.first(session, {"cart_id": cart_id, "now": now})
    else:
        customer_id, phone = customer
        row = await _TOUCH_CUSTOMER.first(
            session, {"cart_id": cart_id, "now": now, "customer_id": customer_id, "customer_phone": phone}
        )
    if row is None:
        return None
    lines: list[CartLineRecord] = []
    levels: dict[int, Level] = {}
    params = {"cart_id": cart_id, "branch_id": row.branch_id, "also": also}
    for line in await _LINES_AND_LEVELS.rows(session, params):
        if line.id is not None:
            lines.append(CartLineRecord(line.id, line.item_id, line.qty, line.choice_ids, line.note, line.components))
        if line.offered_id is not None:
            levels[line.item_id] = Level(line.item_id, line.available, line.stock)
    lines.sort(key=lambda line: line.id)
    read = {line.item_id for line in lines} | ({also} if also is not None else set())
    await _add_component_levels(session, row.branch_id, lines, also_components, read, levels)
    return _record(row, lines, levels)


async def _add_component_levels(
    session: AsyncSession,
    branch_id: int,
    lines: Iterable[CartLineRecord],
    also: Iterable[int],
    read: set[int],
    levels: dict[int, Level],
) -> None:
    """Add the levels of the lines' components (and of the items `also`) to `levels`, but those of items `read`
    already: one statement, none when there is nothing more to read (a cart without combos)."""
    wanted = {item_id for line in lines for item_id in line.component_items} | set(also)
    missing = wanted - read
    if missing:
        levels.update(await levels_of(session, branch_id, sorted(missing)))


async def mark_ordered(session: AsyncSession, cart: CartRecord, now: datetime) -> CartRecord:
    """The locked cart moved to `ordered`: the record as it now is."""
    row = await _ORDER.first(session, {"cart_id": cart.id, "now": now})
    assert row is not None  # locked by this transaction
    return as_ordered(cart, row.version, row.updated_at)


def as_ordered(cart: CartRecord, version: int, updated_at: datetime) -> CartRecord:
    """The record of the cart as `ORDER_CART` left it (its `version` and `updated_at` as it returned them)."""
    return replace(cart, status=CartStatus.ORDERED, version=version, updated_at=updated_at)


async def add_line(
    session: AsyncSession,
    cart: CartRecord,
    item_id: int,
    qty: int,
    choice_ids: list[int],
    note: str | None = None,
    components: list[dict[str, Any]] | None = None,
) -> None:
    """Add a line to the (locked) cart and to its record, with the customer's `note` for the kitchen (None: none) and
    a combo's `components` (None: not a combo)."""
    filled = components or []
    params = {"cart_id": cart.id, "item_id": item_id, "qty": qty, "choice_ids": choice_ids, "note": note}
    line_id = await _ADD_LINE.scalar(session, params | {"components": filled})
    cart.lines.append(CartLineRecord(line_id, item_id, qty, choice_ids, note, filled))


async def set_qty(session: AsyncSession, line: CartLineRecord, qty: int) -> None:
    """Set a line's quantity (above 0), in the database and in its record."""
    await _SET_QTY.execute(session, {"line_id": line.id, "qty": qty})
    line.qty = qty


async def remove_line(session: AsyncSession, cart: CartRecord, line: CartLineRecord) -> None:
    """Remove a line from the (locked) cart and from its record."""
    await _REMOVE_LINE.execute(session, {"line_id": line.id})
    cart.lines.remove(line)


async def with_lines(session: AsyncSession, rows: Sequence[Any]) -> list[CartRecord]:
    """Records of carts read as `CART_COLUMNS` (by a statement of the caller's, several carts at once), with their
    lines and their items' levels in one more statement."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    lines: dict[int, list[CartLineRecord]] = {cart_id: [] for cart_id in ids}
    levels: dict[int, dict[int, Level]] = {cart_id: {} for cart_id in ids}
    read = (
        select(_LINE.cart_id, *_LINE_AND_LEVEL)
        .select_from(
            _LINES.join(CARTS, _CART.id == _LINE.cart_id).outerjoin(
                _OFFERS, (_OFFER.branch_id == _CART.branch_id) & (_OFFER.item_id == _LINE.item_id)
            )
        )
        .where(_LINE.cart_id.in_(ids))
        .order_by(_LINE.id)
    )
    for line in await session.execute(read):
        record = CartLineRecord(line.id, line.item_id, line.qty, line.choice_ids, line.note, line.components)
        lines[line.cart_id].append(record)
        if line.offered_id is not None:
            levels[line.cart_id][line.item_id] = Level(line.item_id, line.available, line.stock)
    for row in rows:
        read_already = {line.item_id for line in lines[row.id]}
        await _add_component_levels(session, row.branch_id, lines[row.id], (), read_already, levels[row.id])
    return [_record(row, lines[row.id], levels[row.id]) for row in rows]
