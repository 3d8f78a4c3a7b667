"""A cart priced from the menu as it is now, and its data (server/payloads/cart.py) for replies, events, snapshots.

Carts store only what the customer picked (item, quantity, choice ids, a note, a combo's slots as
filled). Every read prices
them again (domain/pricing.py), so a kiosk always sees today's prices, and a line whose
item was removed, 86'd, sold out, outside its daypart's window, or whose options no
longer fit the item carries a `problem` instead of silently changing. A combo line's components
are items of their own: one removed, 86'd, sold out or outside its daypart gives the combo line
that problem, naming the component.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import utcnow
from persistence.enums import CartStatus
from persistence.stock import Level
from server.domain import pricing
from server.domain.combos import Component, InvalidComponents, Pick, Slot, fill, price_deltas
from server.domain.dayparts import Window, all_open
from server.domain.options import Chosen, Group, InvalidOptions, choose
from server.orders.cart_records import CartLineRecord, CartRecord
from server.orders.catalogue import CatalogueItem, catalogue_of
from server.payloads.cart import (
    CartCustomer,
    CartLineProblem,
    CartLineView,
    CartView,
    ChosenOption,
    LineComponent,
    ProblemCode,
)
from server.payloads.taxes import taxes_view


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
    tax_category_id: int | None = None
    # The first of its windows that does not hold the branch's time now: not sold until it does.
    closed: Window | None = None
    # A combo's slots; () for any other item.
    slots: tuple[Slot, ...] = ()
    # The catalogue's item, its names in every locale (the offer's own are in the cart's locale).
    source: CatalogueItem | None = None


@dataclass(frozen=True)
class LineProblem:
    """Why a line cannot be ordered as it is: `removed`, `unavailable`, `out_of_stock` or `options`; an `unavailable`
    line outside its daypart names the `window`."""

    code: ProblemCode
    message: str
    window: Window | None = None
    # The component of a combo line the problem is about (its item id); None: the line's own item.
    component_id: int | None = None


def _chosen_options(chosen: Iterable[Chosen]) -> list[ChosenOption]:
    return [
        ChosenOption(
            choice_id=c.choice.id,
            group_id=c.group.id,
            group=c.group.name,
            name=c.choice.name,
            price_delta=c.choice.price_delta,
        )
        for c in chosen
    ]


def _renamed(options: list[ChosenOption], item: CatalogueItem) -> list[ChosenOption]:
    """The options with their groups' and choices' names as `item` (the catalogue's, in some locale) has them."""
    groups = {group.id: group for group in item.groups}
    renamed = []
    for option in options:
        group = groups.get(option.group_id)
        choice = next((c for c in group.choices if c.id == option.choice_id), None) if group else None
        if group is not None and choice is not None:
            option = option.model_copy(update={"group": group.name, "name": choice.name})
        renamed.append(option)
    return renamed


@dataclass(frozen=True)
class PricedComponent:
    """A filled slot of a combo line: its item's name as the menu has it now, its upcharge and its options."""

    component: Component
    name: str
    # The catalogue's item, for its names in another locale (None: not offered).
    source: CatalogueItem | None = None

    def view(self) -> LineComponent:
        """The component as kiosks, kitchens and receipts show it."""
        c = self.component
        return LineComponent(
            slot_id=c.slot.id,
            slot=c.slot.name,
            item_id=c.choice.item_id,
            name=self.name,
            upcharge=c.choice.upcharge,
            options=_chosen_options(c.chosen),
        )

    def named_in(self, chain: Sequence[str], slot_names: Mapping[int, str]) -> dict[str, Any]:
        """The component as order lines keep it, its item and options named in the first locale of `chain` that has
        each text (and its slot as `slot_names`, the combo's in that locale, say)."""
        view = self.view()
        view.slot = slot_names.get(view.slot_id, view.slot)
        if self.source is not None:
            item = self.source.in_locale(chain)
            view.name, view.options = item.name, _renamed(view.options, item)
        return view.model_dump(mode="json")


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
    # The rate its total is taxed at: its item's tax category's in the cart's service mode (a combo's own).
    tax_rate_bp: int = 0
    # A combo's filled slots, in slot order; [] for any other item.
    components: tuple[PricedComponent, ...] = ()
    # The catalogue's item, for its names in another locale (None: the item row is gone).
    source: CatalogueItem | None = None

    def named_in(self, chain: Sequence[str]) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        """The line's name, its options and its components as order lines keep them, in the first locale of `chain`
        that has each text (the kitchen's, for the ticket)."""
        if self.source is None:
            return self.name, self.options(), [component.named_in(chain, {}) for component in self.components]
        item = self.source.in_locale(chain)
        slot_names = {slot.id: slot.name for slot in item.slots}
        components = [component.named_in(chain, slot_names) for component in self.components]
        options = [option.model_dump(mode="json") for option in _renamed(self.chosen_options(), item)]
        return item.name, options, components

    def chosen_options(self) -> list[ChosenOption]:
        """The chosen options, in the order they were picked."""
        return _chosen_options(self.chosen)

    def component_data(self) -> list[dict[str, Any]]:
        """The components as order lines keep them: each names its slot, its own item, its upcharge, its options."""
        return [component.view().model_dump(mode="json") for component in self.components]

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
            tax_rate_bp=self.tax_rate_bp,
            note=self.line.note,
            components=[component.view() for component in self.components],
            problem=None if problem is None else CartLineProblem(code=problem.code, message=problem.message),
        )


async def offers(
    session: AsyncSession, cart: CartRecord, item_ids: Iterable[int], now: datetime | None = None
) -> dict[int, Offer]:
    """The branch's offer of each of these items at `now` (deleted items and items it does not offer included, as
    not offered): the catalogue's item as of the version read with the cart, with the level read with its lines.

    The items must be the cart's and the one it was locked for (`lock_cart`'s `also`): those have their levels.
    """
    items = await catalogue_of(session).items(session, cart.catalogue_version, item_ids)
    moment = now or utcnow()
    chain = cart.chain()
    return {
        item_id: _offer(item, cart.levels.get(item_id), all_open(item.windows, moment, cart.timezone), chain)
        for item_id, item in items.items()
    }


def _offer(item: CatalogueItem, level: Level | None, closed: Window | None, chain: Sequence[str]) -> Offer:
    offered = level is not None and item.on_menu
    shown = item.in_locale(chain)
    return Offer(
        item.item_id,
        shown.name,
        item.price,
        shown.groups,
        offered,
        offered and level is not None and level.available,
        None if level is None else level.stock,
        item.tax_category_id,
        closed,
        shown.slots,
        item,
    )


def picks(components: Iterable[Mapping[str, Any]]) -> list[Pick]:
    """A combo line's stored slots as picks."""
    return [Pick(int(c["slot_id"]), int(c["item_id"]), tuple(c.get("choice_ids") or ())) for c in components]


def sale_problem(offer: Offer | None, qty_in_cart: int, component: bool = False) -> LineProblem | None:
    """Why `qty_in_cart` of an offered item cannot be sold now (None: they can), as a line's problem; a combo's
    `component` names its item."""
    of = None if offer is None or not component else offer.item_id
    if offer is None or not offer.offered:
        name = "this item" if offer is None else offer.name
        return LineProblem("unavailable" if component else "removed", f"{name} is no longer on the menu", None, of)
    if not offer.available:
        return LineProblem("unavailable", f"{offer.name} is not available right now", None, of)
    if offer.closed is not None:
        window = offer.closed
        return LineProblem("unavailable", f"{offer.name} is sold only at {window.label}", window, of)
    if offer.stock is not None and offer.stock < qty_in_cart:
        return LineProblem("out_of_stock", f"only {offer.stock} {offer.name} left", None, of)
    return None


def _components(
    line: CartLineRecord, offer: Offer, found: Mapping[int, Offer], wanted: Mapping[int, int]
) -> tuple[tuple[PricedComponent, ...], LineProblem | None]:
    """A combo line's components priced from the offers, and the first problem of its filling or of a component's
    sale."""
    groups = {
        choice.item_id: o.groups for slot in offer.slots for choice in slot.choices if (o := found.get(choice.item_id))
    }
    try:
        filled = fill(offer.slots, picks(line.components), groups)
    except InvalidComponents as exc:
        return (), LineProblem("options", f"the combo's choices no longer fit it: {exc}")
    priced = []
    problem: LineProblem | None = None
    for component in filled:
        item_offer = found.get(component.choice.item_id)
        name = item_offer.name if item_offer else f"item {component.choice.item_id}"
        priced.append(PricedComponent(component, name, item_offer.source if item_offer else None))
        item_id = component.choice.item_id
        problem = problem or sale_problem(item_offer, wanted.get(item_id, line.qty), component=True)
    return tuple(priced), problem


def price_line(
    line: CartLineRecord,
    offer: Offer | None,
    qty_in_cart: int,
    tax_rate_bp: int = 0,
    found: Mapping[int, Offer] | None = None,
    wanted: Mapping[int, int] | None = None,
) -> PricedLine:
    """Price one line, taxed at `tax_rate_bp`; `qty_in_cart` is how many of its item the whole cart holds (for the
    stock check). A combo's components are priced from `found` (offers of its items) and checked against `wanted`
    (how many of each item the whole cart holds)."""
    if offer is None:
        # The item row itself is gone (never happens with soft deletes, but carts must not break on it).
        removed = LineProblem("removed", "no longer on the menu")
        return PricedLine(line, f"item {line.item_id}", 0, [], 0, 0, removed, tax_rate_bp)
    problem: LineProblem | None = None
    try:
        chosen = choose(offer.groups, line.choice_ids)
    except InvalidOptions as exc:
        chosen = []
        problem = LineProblem("options", f"the options no longer fit this item: {exc}")
    components: tuple[PricedComponent, ...] = ()
    component_problem: LineProblem | None = None
    if offer.slots or line.components:
        components, component_problem = _components(line, offer, found or {}, wanted or {})
        if component_problem is not None and component_problem.code == "options":
            problem = problem or component_problem
    deltas = [c.choice.price_delta for c in chosen] + price_deltas([c.component for c in components])
    unit = pricing.unit_price(offer.price, deltas)
    own = sale_problem(offer, qty_in_cart)
    if own is not None and (own.code != "out_of_stock" or problem is None):
        # Not out of stock over an options problem: order.place refuses those lines, and must not place them
        # without options.
        problem = own
    elif problem is None:
        problem = component_problem
    total = pricing.line_total(unit, line.qty)
    return PricedLine(
        line, offer.name, offer.price, chosen, unit, total, problem, tax_rate_bp, components, offer.source
    )


@dataclass(frozen=True)
class PricedCart:
    """A cart priced line by line, with its totals at the branch's tax rates for the cart's service mode."""

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
            service_mode=cart.service_mode,
            locale=cart.display_locale,
            customer_phone=cart.customer_phone,
            customer=(
                None
                if cart.customer_id is None or cart.customer_name is None
                else CartCustomer(id=cart.customer_id, name=cart.customer_name)
            ),
            lines=[line.view() for line in self.lines],
            subtotal=self.totals.subtotal,
            tax=self.totals.tax,
            taxes=taxes_view(self.totals),
            total=self.totals.total,
            updated_at=cart.updated_at,
            expires_at=cart.updated_at + idle_timeout,
        )
        return view.model_dump(mode="json")


def quantities(lines: Iterable[CartLineRecord]) -> dict[int, int]:
    """How many of each item the lines hold, a combo's components counted as items of their own (stock is taken from
    each)."""
    total: dict[int, int] = {}
    for line in lines:
        for item_id in (line.item_id, *line.component_items):
            total[item_id] = total.get(item_id, 0) + line.qty
    return total


async def price_cart(
    session: AsyncSession, cart: CartRecord, loaded: dict[int, Offer] | None = None, now: datetime | None = None
) -> PricedCart:
    """Price `cart` from the branch's menu as it is `now` (`loaded`: offers this transaction already read).

    The cart's record carries the branch's currency and tax rate, its customer's name and its items' levels; the
    catalogue is this process's (server/orders/catalogue.py), read only when it changed.
    """
    wanted = quantities(cart.lines)
    found = (
        loaded if loaded is not None and wanted.keys() <= loaded.keys() else await offers(session, cart, wanted, now)
    )
    lines = []
    for line in cart.lines:
        offer = found.get(line.item_id)
        rate = cart.tax_rate_of(offer.tax_category_id if offer is not None else None)
        lines.append(price_line(line, offer, wanted[line.item_id], rate, found, wanted))
    if cart.status != CartStatus.OPEN:
        # An ordered cart took its stock with it; only open carts can still run into problems.
        lines = [replace(line, problem=None) for line in lines]
    totals = pricing.totals((line.line_total, line.tax_rate_bp) for line in lines)
    return PricedCart(cart, lines, totals, found)
