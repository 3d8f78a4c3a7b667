"""The catalogue as this process last read it: items with their prices and option groups, checked by version.

Every cart command prices its cart, and the items, prices, option groups and choices it
prices from change only when staff change the menu. So each server process keeps what it
has read of them, with the catalogue version it read them under (`catalogue_version`,
raised by triggers of the database on every change to those tables, whoever makes it).
Every statement that reads a cart reads that version too, in the command's own
transaction, and `Catalogue.items` drops the whole copy when the version differs: a change
committed on any instance is seen by the next price read on every instance, and the
transaction that places an order prices with the catalogue of the version it read. What a
branch offers, 86'd items and stock change with every order and are never kept here: they
are read with the cart's lines (server/orders/cart_rows.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import groupby
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, Integer, bindparam, exists, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table
from persistence.prepared import Prepared
from persistence.tables import (
    CatalogueVersion,
    Category,
    ComboSlot,
    ComboSlotChoice,
    Daypart,
    Item,
    OptionChoice,
    OptionGroup,
    Station,
)
from server.domain.combos import Slot, SlotChoice
from server.domain.dayparts import Window
from server.domain.options import Choice, Group
from server.domain.stations import Kitchen, KitchenStation, catalogue_code
from server.domain.translations import Translations, pick


@dataclass(frozen=True)
class CatalogueItem:
    """An item of the catalogue: its name, price and option groups, whether it (and its category) is not deleted,
    and its tax category (None: its branch's default rate); `windows`, its own daypart's and its category's, must
    all hold the branch's time for it to be sold."""

    item_id: int
    name: str
    price: int
    groups: tuple[Group, ...]
    on_menu: bool
    tax_category_id: int | None = None
    windows: tuple[Window, ...] = ()
    # A combo's slots, in display order; () for any other item.
    slots: tuple[Slot, ...] = ()
    # The kitchen station code its lines go to: its own, else its category's (None: the branch's default station).
    station: str | None = None
    # Its name's, its groups' and its choices' (by id) in other languages (server/domain/translations.py).
    translations: Translations = field(default_factory=dict, compare=False, hash=False)
    group_translations: Mapping[int, Translations] = field(default_factory=dict, compare=False, hash=False)
    choice_translations: Mapping[int, Translations] = field(default_factory=dict, compare=False, hash=False)

    def in_locale(self, chain: Sequence[str]) -> CatalogueItem:
        """The item with its name and its groups' and choices' names in the first locale of `chain` that has each
        (`fallback_chain`), the base names otherwise."""
        texts = self.translations or self.group_translations or self.choice_translations
        if not chain or not (texts or any(slot.translations for slot in self.slots)):
            return self
        groups = tuple(
            replace(
                group,
                name=_named(self.group_translations.get(group.id), chain, group.name),
                choices=tuple(
                    replace(choice, name=_named(self.choice_translations.get(choice.id), chain, choice.name))
                    for choice in group.choices
                ),
            )
            for group in self.groups
        )
        slots = tuple(replace(slot, name=_named(slot.translations, chain, slot.name)) for slot in self.slots)
        return replace(self, name=_named(self.translations, chain, self.name), groups=groups, slots=slots)


def _named(translations: Translations | None, chain: Sequence[str], base: str) -> str:
    return pick(translations, "name", chain, base) or base


# The version as a column of the statements that read a cart (0 before the first change). Written out, like the
# cart's looked-up columns (server/orders/cart_rows.py): SQLite's UPDATE ... RETURNING takes it so.
CURRENT_VERSION = literal_column(
    f"COALESCE((SELECT version FROM {CatalogueVersion.__tablename__} WHERE id = 1), 0)", Integer
).label("catalogue_version")

_ITEMS, _CATEGORIES, _GROUPS, _CHOICES = table(Item), table(Category), table(OptionGroup), table(OptionChoice)
_ITEM, _CATEGORY, _GROUP, _CHOICE = (t.c for t in (_ITEMS, _CATEGORIES, _GROUPS, _CHOICES))
_ITEM_PARTS, _CATEGORY_PARTS = table(Daypart).alias("item_daypart"), table(Daypart).alias("category_daypart")
_ITEM_PART, _CATEGORY_PART = _ITEM_PARTS.c, _CATEGORY_PARTS.c
_SLOTS, _SLOT_CHOICES = table(ComboSlot), table(ComboSlotChoice)
_SLOT, _SLOT_CHOICE = _SLOTS.c, _SLOT_CHOICES.c
# Whether an item is a combo, read with it: its slots are read in a second statement only for combos.
_IS_COMBO = exists().where(_SLOT.item_id == _ITEM.id).label("is_combo")
_READ_SLOTS = (
    select(_SLOT.item_id, _SLOT.id, _SLOT.name, _SLOT_CHOICE.item_id.label("choice_item_id"), _SLOT_CHOICE.upcharge)
    .add_columns(_SLOT_CHOICE.is_default, _SLOT.translations)
    .join_from(_SLOTS, _SLOT_CHOICES, _SLOT_CHOICE.slot_id == _SLOT.id)
    .where(_SLOT.item_id.in_(bindparam("item_ids", expanding=True)))
    .order_by(_SLOT.item_id, _SLOT.position, _SLOT.id, _SLOT_CHOICE.position, _SLOT_CHOICE.id)
)


def _windows(row: Any) -> tuple[Window, ...]:
    """The item's own window and its category's, of those it has."""
    return tuple(
        Window(name, starts_at, ends_at)
        for name, starts_at, ends_at in (
            (row.item_daypart, row.item_starts_at, row.item_ends_at),
            (row.category_daypart, row.category_starts_at, row.category_ends_at),
        )
        if name is not None
    )


@cache
def _read(count: int) -> Prepared:
    """`count` items (ids `id_0`...), one row per choice (or per group without choices, or per item without
    groups), in display order: one statement per count, as a prepared one takes no list."""
    ids = [bindparam(f"id_{n}", type_=_ITEM.id.type) for n in range(count)]
    return Prepared(
        select(
            _ITEM.id,
            _ITEM.name,
            _ITEM.translations,
            _ITEM.price,
            _ITEM.tax_category_id,
            _ITEM.deleted_at,
            _CATEGORY.deleted_at.label("category_deleted_at"),
            _ITEM.station,
            _CATEGORY.station.label("category_station"),
            _ITEM_PART.name.label("item_daypart"),
            _ITEM_PART.starts_at.label("item_starts_at"),
            _ITEM_PART.ends_at.label("item_ends_at"),
            _CATEGORY_PART.name.label("category_daypart"),
            _CATEGORY_PART.starts_at.label("category_starts_at"),
            _CATEGORY_PART.ends_at.label("category_ends_at"),
            _GROUP.id.label("group_id"),
            _GROUP.name.label("group_name"),
            _GROUP.translations.label("group_translations"),
            _GROUP.min_select,
            _GROUP.max_select,
            _CHOICE.id.label("choice_id"),
            _CHOICE.name.label("choice_name"),
            _CHOICE.translations.label("choice_translations"),
            _CHOICE.price_delta,
            _CHOICE.is_default,
            _IS_COMBO,
        )
        .join_from(_ITEMS, _CATEGORIES, _CATEGORY.id == _ITEM.category_id)
        .outerjoin(_ITEM_PARTS, _ITEM_PART.id == _ITEM.daypart_id)
        .outerjoin(_CATEGORY_PARTS, _CATEGORY_PART.id == _CATEGORY.daypart_id)
        .outerjoin(_GROUPS, _GROUP.item_id == _ITEM.id)
        .outerjoin(_CHOICES, _CHOICE.group_id == _GROUP.id)
        .where(_ITEM.id.in_(ids))
        .order_by(_ITEM.id, _GROUP.position, _GROUP.id, _CHOICE.position, _CHOICE.id)
    )


async def read_items(session: AsyncSession, item_ids: Iterable[int]) -> dict[int, CatalogueItem]:
    """The catalogue's items with these ids, as the session's transaction sees them (an id with no row is left
    out)."""
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    rows = await _read(len(ids)).rows(session, {f"id_{n}": item_id for n, item_id in enumerate(ids)})
    combos = sorted({row.id for row in rows if row.is_combo})
    slots = await _read_slots(session, combos) if combos else {}
    found: dict[int, CatalogueItem] = {}
    for item_id, grouped in groupby(rows, key=lambda row: row.id):
        item_rows = list(grouped)
        first = item_rows[0]
        choices: dict[int, list[Choice]] = {}
        groups: dict[int, Any] = {}  # group id -> its first row
        group_texts: dict[int, Translations] = {}
        choice_texts: dict[int, Translations] = {}
        for row in item_rows:
            if row.group_id is None:
                continue
            groups.setdefault(row.group_id, row)
            if row.group_translations:
                group_texts[row.group_id] = row.group_translations
            group_choices = choices.setdefault(row.group_id, [])
            if row.choice_id is not None:
                group_choices.append(Choice(row.choice_id, row.choice_name, row.price_delta, row.is_default))
                if row.choice_translations:
                    choice_texts[row.choice_id] = row.choice_translations
        found[item_id] = CatalogueItem(
            item_id,
            first.name,
            first.price,
            tuple(
                Group(g.group_id, g.group_name, g.min_select, g.max_select, tuple(choices[g.group_id]))
                for g in groups.values()
            ),
            first.deleted_at is None and first.category_deleted_at is None,
            first.tax_category_id,
            _windows(first),
            slots.get(item_id, ()),
            catalogue_code(first.station, first.category_station),
            first.translations or {},
            group_texts,
            choice_texts,
        )
    return found


async def _read_slots(session: AsyncSession, combo_ids: list[int]) -> dict[int, tuple[Slot, ...]]:
    """The slots of these combos, with their choices, in display order (a slot without choices is left out: it
    could never be filled, and the REST API never leaves one so)."""
    slots: dict[int, dict[int, tuple[str, list[SlotChoice]]]] = {}
    texts: dict[int, Translations] = {}
    for row in await session.execute(_READ_SLOTS, {"item_ids": combo_ids}):
        _, choices = slots.setdefault(row.item_id, {}).setdefault(row.id, (row.name, []))
        choices.append(SlotChoice(row.choice_item_id, row.upcharge, row.is_default))
        texts[row.id] = row.translations or {}
    return {
        item_id: tuple(
            Slot(slot_id, name, tuple(choices), texts[slot_id]) for slot_id, (name, choices) in item_slots.items()
        )
        for item_id, item_slots in slots.items()
    }


_STATIONS = table(Station).c
_READ_KITCHEN = Prepared(
    select(_STATIONS.id, _STATIONS.code, _STATIONS.is_expo, _STATIONS.position, _STATIONS.name).where(
        _STATIONS.branch_id == bindparam("branch_id")
    )
)


async def read_kitchen(session: AsyncSession, branch_id: int) -> Kitchen:
    """The branch's kitchen stations, as the session's transaction sees them."""
    rows = await _READ_KITCHEN.rows(session, {"branch_id": branch_id})
    return Kitchen.of(KitchenStation(row.id, row.code, row.is_expo, row.position, row.name) for row in rows)


class Catalogue:
    """The items and kitchens this process has read, all of one catalogue version (`version`; None before the first
    read)."""

    def __init__(self) -> None:
        self.version: int | None = None
        self._items: dict[int, CatalogueItem] = {}
        self._kitchens: dict[int, Kitchen] = {}

    def __contains__(self, item_id: object) -> bool:
        """Whether it holds the item."""
        return item_id in self._items

    async def items(self, session: AsyncSession, version: int, item_ids: Iterable[int]) -> dict[int, CatalogueItem]:
        """These items as of catalogue `version` or later, which the session's transaction has just read: what this
        process holds when it holds them at that version, read in the session's transaction otherwise."""
        if version != self.version:
            # Any other version, older ones too: a version the database went back to (a restored backup) is
            # never mistaken for the one kept.
            self.version, self._items, self._kitchens = version, {}, {}
        wanted = set(item_ids)
        missing = wanted - self._items.keys()
        if not missing:
            return {item_id: self._items[item_id] for item_id in wanted}
        kept = self._items
        read = await read_items(session, missing)
        if self._items is kept:
            # Kept only when nothing dropped the copy while this read ran: another command may have read a newer
            # version meanwhile, and this read may be older than the change that made it.
            kept.update(read)
        return {item_id: item for item_id in wanted if (item := kept.get(item_id) or read.get(item_id)) is not None}

    async def kitchen(self, session: AsyncSession, version: int, branch_id: int) -> Kitchen:
        """The branch's stations as of catalogue `version` or later (read as `items` reads items)."""
        if version != self.version:
            self.version, self._items, self._kitchens = version, {}, {}
        kept = self._kitchens.get(branch_id)
        if kept is not None:
            return kept
        kitchens = self._kitchens
        kitchen = await read_kitchen(session, branch_id)
        if self._kitchens is kitchens:
            kitchens[branch_id] = kitchen
        return kitchen


_CATALOGUES: WeakKeyDictionary[Engine, Catalogue] = WeakKeyDictionary()


def catalogue_of(session: AsyncSession) -> Catalogue:
    """The process's catalogue of the session's database (one per engine, so one per server instance)."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    catalogue = _CATALOGUES.get(engine)
    if catalogue is None:
        catalogue = _CATALOGUES[engine] = Catalogue()
    return catalogue
