"""A cart priced from the menu as it is now, and its data (server/payloads/cart.py) for replies, events, snapshots.

Carts store only what the customer picked (item, quantity, choice ids). Every read prices
them again (domain/pricing.py), so a kiosk always sees today's prices, and a line whose
item was removed, 86'd, sold out, or whose options no longer fit the item carries a
`problem` instead of silently changing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cache
from itertools import groupby
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table
from persistence.enums import CartStatus
from persistence.prepared import Prepared
from persistence.tables import Category, Item, ItemAvailability, OptionChoice, OptionGroup
from server.domain import pricing
from server.domain.options import Choice, Chosen, Group, InvalidOptions, choose
from server.orders.cart_rows import CartLineRecord, CartRecord
from server.payloads.cart import CartCustomer, CartLineProblem, CartLineView, CartView, ChosenOption, ProblemCode


@dataclass(frozen=True)
class Offer:
    """An item as one branch offers it now: its name, price and option groups, and whether it can be sold."""

    item_id: int
    name: str
    price: int
    groups: tuple[Group, ...]
    offered: bool
    available: bool
    stock: int | None


@dataclass(frozen=True)
class LineProblem:
    """Why a line cannot be ordered as it is: `removed`, `unavailable`, `out_of_stock` or `options`."""

    code: ProblemCode
    message: str


@dataclass(frozen=True)
class PricedLine:
    """A cart line with its prices from today's menu."""

    line: CartLineRecord
    name: str
    item_price: int
    chosen: list[Chosen]
    unit_price: int
    line_total: int
    problem: LineProblem | None

    def chosen_options(self) -> list[ChosenOption]:
        """The chosen options, in the order they were picked."""
        return [
            ChosenOption(
                choice_id=c.choice.id,
                group_id=c.group.id,
                group=c.group.name,
                name=c.choice.name,
                price_delta=c.choice.price_delta,
            )
            for c in self.chosen
        ]

    def options(self) -> list[dict[str, Any]]:
        """The chosen options as order lines keep them."""
        return [option.model_dump(mode="json") for option in self.chosen_options()]

    def view(self) -> CartLineView:
        """The line as a kiosk shows it."""
        problem = self.problem
        return CartLineView(
            id=self.line.id,
            item_id=self.line.item_id,
            name=self.name,
            qty=self.line.qty,
            item_price=self.item_price,
            options=self.chosen_options(),
            unit_price=self.unit_price,
            line_total=self.line_total,
            problem=None if problem is None else CartLineProblem(code=problem.code, message=problem.message),
        )


# One row per choice (or per group without choices, or per item without groups), in display order.
_ITEMS, _CATEGORIES, _AVAILABILITY = table(Item), table(Category), table(ItemAvailability)
_GROUPS, _CHOICES = table(OptionGroup), table(OptionChoice)
_ITEM, _CATEGORY, _OFFER, _GROUP, _CHOICE = (t.c for t in (_ITEMS, _CATEGORIES, _AVAILABILITY, _GROUPS, _CHOICES))
_OFFER_COLUMNS = (
    _ITEM.id,
    _ITEM.name,
    _ITEM.price,
    _ITEM.deleted_at,
    _CATEGORY.deleted_at.label("category_deleted_at"),
    _OFFER.available,
    _OFFER.stock,
    _OFFER.item_id.label("offered_id"),
    _GROUP.id.label("group_id"),
    _GROUP.name.label("group_name"),
    _GROUP.min_select,
    _GROUP.max_select,
    _CHOICE.id.label("choice_id"),
    _CHOICE.name.label("choice_name"),
    _CHOICE.price_delta,
    _CHOICE.is_default,
)


@cache
def _offers(count: int) -> Prepared:
    """The offers of `count` items (ids `id_0`...): one statement per count, as a prepared one takes no list."""
    ids = [bindparam(f"id_{n}", type_=_ITEM.id.type) for n in range(count)]
    return Prepared(
        select(*_OFFER_COLUMNS)
        .join_from(_ITEMS, _CATEGORIES, _CATEGORY.id == _ITEM.category_id)
        .outerjoin(
            _AVAILABILITY,
            (_OFFER.item_id == _ITEM.id) & (_OFFER.branch_id == bindparam("branch_id")),
        )
        .outerjoin(_GROUPS, _GROUP.item_id == _ITEM.id)
        .outerjoin(_CHOICES, _CHOICE.group_id == _GROUP.id)
        .where(_ITEM.id.in_(ids))
        .order_by(_ITEM.id, _GROUP.position, _GROUP.id, _CHOICE.position, _CHOICE.id)
    )


async def offers(session: AsyncSession, branch_id: int, item_ids: Iterable[int]) -> dict[int, Offer]:
    """The branch's offer of each item (deleted items and items it does not offer included, as not offered).

    One query of plain rows: pricing needs values, not tracked ORM objects (loading those took three queries).
    """
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    params: dict[str, int] = {f"id_{n}": item_id for n, item_id in enumerate(ids)}
    params["branch_id"] = branch_id
    rows = await _offers(len(ids)).rows(session, params)
    result: dict[int, Offer] = {}
    for item_id, grouped in groupby(rows, key=lambda row: row.id):
        item_rows = list(grouped)
        first = item_rows[0]
        choices: dict[int, list[Choice]] = {}
        groups: dict[int, Any] = {}  # group id -> its first row
        for row in item_rows:
            if row.group_id is None:
                continue
            groups.setdefault(row.group_id, row)
            group_choices = choices.setdefault(row.group_id, [])
            if row.choice_id is not None:
                group_choices.append(Choice(row.choice_id, row.choice_name, row.price_delta, row.is_default))
        offered = first.offered_id is not None and first.deleted_at is None and first.category_deleted_at is None
        result[item_id] = Offer(
            item_id,
            first.name,
            first.price,
            tuple(
                Group(g.group_id, g.group_name, g.min_select, g.max_select, tuple(choices[g.group_id]))
                for g in groups.values()
            ),
            offered,
            offered and first.available,
            first.stock,
        )
    return result


def price_line(line: CartLineRecord, offer: Offer | None, qty_in_cart: int) -> PricedLine:
    """Price one line; `qty_in_cart` is how many of its item the whole cart holds (for the stock check)."""
    if offer is None:
        # The item row itself is gone (never happens with soft deletes, but carts must not break on it).
        return PricedLine(line, f"item {line.item_id}", 0, [], 0, 0, LineProblem("removed", "no longer on the menu"))
    problem: LineProblem | None = None
    try:
        chosen = choose(offer.groups, line.choice_ids)
    except InvalidOptions as exc:
        chosen = []
        problem = LineProblem("options", f"the options no longer fit this item: {exc}")
    unit = pricing.unit_price(offer.price, (c.choice.price_delta for c in chosen))
    if not offer.offered:
        problem = LineProblem("removed", f"{offer.name} is no longer on the menu")
    elif not offer.available:
        problem = LineProblem("unavailable", f"{offer.name} is not available right now")
    elif problem is None and offer.stock is not None and offer.stock < qty_in_cart:
        # Not over an options problem: order.place refuses those lines, and must not place them without options.
        problem = LineProblem("out_of_stock", f"only {offer.stock} {offer.name} left")
    return PricedLine(line, offer.name, offer.price, chosen, unit, pricing.line_total(unit, line.qty), problem)


@dataclass(frozen=True)
class PricedCart:
    """A cart priced line by line, with its totals at the branch's tax rate."""

    cart: CartRecord
    lines: list[PricedLine]
    totals: pricing.Totals
    # What the branch offers of each item, as read for this pricing (its stock included).
    offers: dict[int, Offer]

    @property
    def problems(self) -> list[PricedLine]:
        """The lines that cannot be ordered as they are."""
        return [line for line in self.lines if line.problem is not None]

    def data(self, idle_timeout: timedelta) -> dict[str, Any]:
        """The cart as a kiosk shows it, as JSON data; `expires_at` is when it idles out unless changed."""
        cart = self.cart
        view = CartView(
            id=cart.id,
            version=cart.version,
            status=cart.status,
            branch_id=cart.branch_id,
            device_id=cart.device_id,
            currency=cart.currency,
            customer_phone=cart.customer_phone,
            customer=(
                None
                if cart.customer_id is None or cart.customer_name is None
                else CartCustomer(id=cart.customer_id, name=cart.customer_name)
            ),
            lines=[line.view() for line in self.lines],
            subtotal=self.totals.subtotal,
            tax=self.totals.tax,
            total=self.totals.total,
            updated_at=cart.updated_at,
            expires_at=cart.updated_at + idle_timeout,
        )
        return view.model_dump(mode="json")


def quantities(lines: Iterable[CartLineRecord]) -> dict[int, int]:
    """How many of each item the lines hold."""
    total: dict[int, int] = {}
    for line in lines:
        total[line.item_id] = total.get(line.item_id, 0) + line.qty
    return total


async def price_cart(session: AsyncSession, cart: CartRecord, loaded: dict[int, Offer] | None = None) -> PricedCart:
    """Price `cart` from the branch's menu as it is now (`loaded`: offers this transaction already read).

    The cart's record carries the branch's currency and tax rate and its customer's name: only offers are read.
    """
    wanted = quantities(cart.lines)
    found = (
        loaded
        if loaded is not None and wanted.keys() <= loaded.keys()
        else await offers(session, cart.branch_id, wanted)
    )
    lines = [price_line(line, found.get(line.item_id), wanted[line.item_id]) for line in cart.lines]
    if cart.status != CartStatus.OPEN:
        # An ordered cart took its stock with it; only open carts can still run into problems.
        lines = [replace(line, problem=None) for line in lines]
    totals = pricing.totals((line.line_total for line in lines), cart.tax_rate_bp)
    return PricedCart(cart, lines, totals, found)
