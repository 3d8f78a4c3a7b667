"""The menu as a branch's kiosks see it: categories in order, offered items with options and availability.

One shape everywhere: the `branch:{b}:menu` snapshot and the `menu.get` reply are
`branch_menu`; `menu.item_updated` carries one item of it (`branch_item`), and
`stock.changed` carries `stock_changed`. An item sold only in dayparts names their windows
and is orderable only inside all of them, in the branch's time zone; the menu's reader
passes the moment it reads for. The models below describe that shape for the
AsyncAPI document and the command replies; the dicts are built directly.

Items and choices carry their allergens and calories, a choice's being what it adds to its item's: a kiosk works
out a line's from the item and the choices picked, and may filter the menu by them. A combo (meal deal) lists its
slots with their choices of items, each with its upcharge, its own allergens, calories and options, and whether
the branch sells it now (server/payloads/menu_combos.py): a combo line's allergens and calories are its
components' and their options'.

Names and descriptions are in a locale: the snapshot's and `menu.get`'s in the one asked for (the
connection's, falling back to the branch's default, then to the base names), the events'
(published once to every device of the branch) in the branch's default. Categories, items,
groups and choices also carry `translations`, all their texts by locale, so that a device
showing another locale renders an event's item in it (server/domain/translations.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import utcnow
from persistence.enums import Allergen, ServiceMode
from persistence.tables import Branch, Category, ComboSlot, Daypart, Item, ItemAvailability
from server.domain.dayparts import Window, all_open
from server.domain.translations import fallback_chain, pick
from server.payloads.menu_combos import component_ids, fillable, read_slots, slots_data


class MenuTexts(BaseModel):
    """A row's texts in one locale: its name, and an item's description where it has one there."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None


TRANSLATIONS_DESCRIPTION = "its texts by locale code (`de`, `pt-BR`): pick the device's locale, then its language"


class MenuChoice(BaseModel):
    """One choice of an option group; `price_delta` in minor units, `allergens` and `calories` what it adds."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    price_delta: int
    is_default: bool
    allergens: list[Allergen] = Field(description="the allergens it adds to its item's, in the EU's order")
    calories: int | None = Field(description="the kcal it adds to its item's (may be negative); null: not known")
    translations: dict[str, MenuTexts] = Field(default_factory=dict, description=TRANSLATIONS_DESCRIPTION)


class MenuOptionGroup(BaseModel):
    """A group of choices of an item, and how many of them a cart line may hold."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    min_select: int
    max_select: int
    choices: list[MenuChoice]
    translations: dict[str, MenuTexts] = Field(default_factory=dict, description=TRANSLATIONS_DESCRIPTION)


class MenuComboChoice(BaseModel):
    """An item a combo's slot may be filled with: its upcharge over the combo's price, and that item as it is sold
    (its options, allergens and calories; with `cart.add`, its own option choice ids go in `choice_ids`)."""

    model_config = ConfigDict(extra="forbid")

    item_id: int
    name: str
    upcharge: int = Field(description="minor units added to the combo's price (0 or more)")
    is_default: bool = Field(description="fills the slot when `cart.add` leaves `components` out")
    available: bool = Field(
        description="whether the branch sells the item now (offered, on, in stock, in its dayparts)"
    )
    allergens: list[Allergen] = Field(description="the item's allergens, without its choices'")
    calories: int | None = Field(description="kcal of the item, without its choices; null: not known")
    option_groups: list[MenuOptionGroup] = Field(description="the item's option groups (drink sizes)")
    translations: dict[str, MenuTexts] = Field(default_factory=dict, description=TRANSLATIONS_DESCRIPTION)


class MenuComboSlot(BaseModel):
    """A slot of a combo (Main, Side, Drink): filled by exactly one of its choices."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    choices: list[MenuComboChoice]
    translations: dict[str, MenuTexts] = Field(default_factory=dict, description=TRANSLATIONS_DESCRIPTION)


class MenuWindow(BaseModel):
    """A daypart's window of local time, in the branch's time zone: from `starts_at` until `ends_at` (HH:MM; an end
    before the start crosses midnight)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    starts_at: str
    ends_at: str


class MenuItem(BaseModel):
    """An item the branch offers: `available` is the 86 flag alone; `orderable` says whether a kiosk may sell it."""

    model_config = ConfigDict(extra="forbid")

    id: int
    category_id: int
    name: str
    description: str | None
    image_url: str | None
    price: int
    allergens: list[Allergen] = Field(description="the allergens it contains, without its choices', in the EU's order")
    calories: int | None = Field(description="kcal of one, without its choices; null: not known")
    position: int = Field(description="display order within its category, lowest first")
    available: bool = Field(description="false when staff 86'd the item in the branch")
    stock: int | None = Field(description="how many are left; null when the branch does not count them")
    orderable: bool = Field(
        description="available, stock null or above 0 and inside its dayparts: whether a kiosk may sell it now"
    )
    dayparts: list[MenuWindow] = Field(
        description="its own daypart's window and its category's, of those it has: sold only inside all of them"
    )
    option_groups: list[MenuOptionGroup]
    combo_slots: list[MenuComboSlot] = Field(
        default_factory=list,
        description="a combo's slots, each filled by one of its choices; empty for any other item. A combo is "
        "orderable only while every slot has an available choice",
    )
    translations: dict[str, MenuTexts] = Field(default_factory=dict, description=TRANSLATIONS_DESCRIPTION)


class MenuCategory(BaseModel):
    """A category with the items the branch offers in it, in display order."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    position: int
    items: list[MenuItem]
    translations: dict[str, MenuTexts] = Field(default_factory=dict, description=TRANSLATIONS_DESCRIPTION)


class MenuSnapshot(BaseModel):
    """`branch:{b}:menu` and the `menu.get` reply: the branch's menu in display order, with availability."""

    model_config = ConfigDict(extra="forbid")

    branch_id: int
    currency: str | None
    service_modes: list[ServiceMode] = Field(description="eat in, take away: what the branch offers, default first")
    locale: str = Field(default="en", description="the locale its names and descriptions are in")
    default_locale: str = Field(default="en", description="the branch's: the locale of the menu's events' names")
    locales: list[str] = Field(default_factory=lambda: ["en"], description="what the branch's kiosks offer")
    categories: list[MenuCategory]


class MenuItemRemoved(BaseModel):
    """`menu.item_removed`: the item left the branch's menu."""

    model_config = ConfigDict(extra="forbid")

    branch_id: int
    item_id: int


def is_orderable(available: bool, stock: int | None) -> bool:
    """Whether a kiosk may sell the item: it is not 86'd, and its stock is not counted or not used up."""
    return available and (stock is None or stock > 0)


def stock_changed(
    branch_id: int, item_id: int, available: bool, stock: int | None, in_window: bool = True
) -> dict[str, Any]:
    """The data of a `stock.changed` event: an item's availability and stock in a branch after a change; `in_window`
    whether the branch's time is inside the item's dayparts (`closed_now`)."""
    return {
        "branch_id": branch_id,
        "item_id": item_id,
        "available": available,
        "stock": stock,
        "orderable": is_orderable(available, stock) and in_window,
    }


async def closed_now(
    session: AsyncSession, branch_id: int, item_ids: Iterable[int], now: datetime | None = None
) -> set[int]:
    """Those of these items outside one of their dayparts' windows in the branch at `now` (the present by default):
    one read, and no more when none of them has a daypart."""
    ids = sorted(set(item_ids))
    if not ids:
        return set()
    rows = (
        await session.execute(
            select(Item.id, Item.daypart_id, Category.daypart_id)
            .join(Category, Category.id == Item.category_id)
            .where(Item.id.in_(ids), or_(Item.daypart_id.is_not(None), Category.daypart_id.is_not(None)))
        )
    ).all()
    if not rows:
        return set()
    clock = await _clock(session, await session.get(Branch, branch_id), now)
    return {
        item_id
        for item_id, own, of_category in rows
        if not clock.inside([clock.dayparts[d] for d in (own, of_category) if d is not None and d in clock.dayparts])
    }


def _offered(branch_id: int) -> Select[Item, ItemAvailability, int | None]:
    """Items the branch offers that are on its menu (neither they nor their category are deleted), each with its
    category's daypart."""
    return (
        select(Item, ItemAvailability, Category.daypart_id)
        .join(ItemAvailability, ItemAvailability.item_id == Item.id)
        .join(Category, Category.id == Item.category_id)
        .where(ItemAvailability.branch_id == branch_id, Item.deleted_at.is_(None), Category.deleted_at.is_(None))
    )


async def windows(session: AsyncSession) -> dict[int, Window]:
    """Every daypart's window by id (a handful of rows)."""
    rows = await session.scalars(select(Daypart))
    return {d.id: Window(d.name, d.starts_at, d.ends_at) for d in rows}


class _Clock:
    """What an item's orderability depends on beyond its row: the dayparts, the branch's time zone, the moment."""

    def __init__(self, dayparts: dict[int, Window], timezone: str, now: datetime) -> None:
        self.dayparts, self.timezone, self.now = dayparts, timezone, now

    def windows(self, item: Item, category_daypart: int | None) -> list[Window]:
        """The item's own window and its category's, of those it has."""
        return [self.dayparts[d] for d in (item.daypart_id, category_daypart) if d is not None and d in self.dayparts]

    def inside(self, windows: list[Window]) -> bool:
        """Whether the branch's time now is inside all these windows."""
        return all_open(windows, self.now, self.timezone) is None


async def _clock(session: AsyncSession, branch: Branch | None, now: datetime | None) -> _Clock:
    return _Clock(await windows(session), branch.timezone if branch else "UTC", now or utcnow())


def menu_locale(branch: Branch | None, locale: str | None) -> str:
    """The locale a menu of the branch is shown in for one asking for `locale`: it, when the branch offers it, else
    the branch's default."""
    if branch is None:
        return locale or "en"
    return locale if locale is not None and locale in branch.locales else branch.default_locale


async def branch_menu(
    session: AsyncSession, branch_id: int, now: datetime | None = None, *, locale: str | None = None
) -> dict[str, Any]:
    """The menu of one branch at `now` (the present by default), its texts in `locale` (None, or one the branch does
    not offer: its default): only items it offers and that are not deleted, each with its availability."""
    branch = await session.get(Branch, branch_id)
    clock = await _clock(session, branch, now)
    shown = menu_locale(branch, locale)
    chain = fallback_chain(shown, branch.default_locale if branch else None)
    statement = _offered(branch_id).order_by(Category.position, Category.id, Item.position, Item.id)
    rows = (await session.execute(statement)).all()
    categories = (
        await session.scalars(
            select(Category).where(Category.deleted_at.is_(None)).order_by(Category.position, Category.id)
        )
    ).all()
    slots = await read_slots(session, [item.id for item, _, _ in rows])
    sold = {item.id: _sold(item, offer, category_daypart, clock) for item, offer, category_daypart in rows}
    # A component the branch does not offer on its own is not sold in a combo either.
    items_by_category: dict[int, list[dict[str, Any]]] = {}
    for item, offer, category_daypart in rows:
        entry = _item(item, offer, category_daypart, clock, slots.get(item.id, []), sold, chain)
        items_by_category.setdefault(item.category_id, []).append(entry)
    return {
        "branch_id": branch_id,
        "currency": branch.currency if branch else None,
        "service_modes": branch.service_modes if branch else [],
        "locale": shown,
        "default_locale": branch.default_locale if branch else shown,
        "locales": branch.locales if branch else [shown],
        "categories": [
            {
                "id": c.id,
                "name": pick(c.translations, "name", chain, c.name),
                "position": c.position,
                "items": items_by_category[c.id],
                "translations": c.translations,
            }
            for c in categories
            if c.id in items_by_category
        ],
    }


async def branch_item(
    session: AsyncSession, branch_id: int, item_id: int, now: datetime | None = None
) -> dict[str, Any] | None:
    """One item exactly as the branch's menu shows it at `now` (the present by default), named in the branch's default
    locale (as events carry it); None when it is not on that menu."""
    # populate_existing: within a transaction that just changed the item, read what was written
    # (option groups in display order, the stock the UPDATE left) rather than the objects as they were built.
    statement = _offered(branch_id).where(Item.id == item_id).execution_options(populate_existing=True)
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    branch = await session.get(Branch, branch_id)
    clock = await _clock(session, branch, now)
    chain = fallback_chain(branch.default_locale if branch else None, None)
    slots = await read_slots(session, [item_id])
    sold: dict[int, bool] = {}
    if slots:
        components = (await session.execute(_offered(branch_id).where(Item.id.in_(component_ids(slots))))).all()
        sold = {item.id: _sold(item, offer, category_daypart, clock) for item, offer, category_daypart in components}
    return _item(row[0], row[1], row[2], clock, slots.get(item_id, []), sold, chain)


def _sold(item: Item, offer: ItemAvailability, category_daypart: int | None, clock: _Clock) -> bool:
    """Whether a kiosk may sell the item now: on, in stock and inside its dayparts."""
    return is_orderable(offer.available, offer.stock) and clock.inside(clock.windows(item, category_daypart))


def _item(
    item: Item,
    offer: ItemAvailability,
    category_daypart: int | None,
    clock: _Clock,
    slots: list[ComboSlot],
    sold: dict[int, bool],
    chain: tuple[str, ...],
) -> dict[str, Any]:
    windows = clock.windows(item, category_daypart)
    combo = slots_data(slots, sold, lambda component: _groups(component, chain), chain)
    return {
        "id": item.id,
        "category_id": item.category_id,
        "name": pick(item.translations, "name", chain, item.name),
        "description": pick(item.translations, "description", chain, item.description),
        "image_url": item.image_url,
        "price": item.price,
        "allergens": item.allergens,
        "calories": item.calories,
        "position": item.position,
        "available": offer.available,
        "stock": offer.stock,
        "orderable": is_orderable(offer.available, offer.stock) and clock.inside(windows) and fillable(combo),
        "dayparts": [window.data() for window in windows],
        "option_groups": _groups(item, chain),
        "combo_slots": combo,
        "translations": item.translations,
    }


def _groups(item: Item, chain: Sequence[str]) -> list[dict[str, Any]]:
    """The item's option groups as menu data, named in the first locale of `chain` that has each name."""
    return [
        {
            "id": group.id,
            "name": pick(group.translations, "name", chain, group.name),
            "min_select": group.min_select,
            "max_select": group.max_select,
            "choices": [
                {
                    "id": c.id,
                    "name": pick(c.translations, "name", chain, c.name),
                    "price_delta": c.price_delta,
                    "is_default": c.is_default,
                    "allergens": c.allergens,
                    "calories": c.calories,
                    "translations": c.translations,
                }
                for c in group.choices
            ],
            "translations": group.translations,
        }
        for group in item.option_groups
    ]
