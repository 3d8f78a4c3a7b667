"""A combo's slots as a branch's menu shows them: each slot's choices with their upcharges and availability.

A choice is available when the branch offers its item, that item is not 86'd or sold out, and the branch's time is
inside its dayparts: a sold-out component makes only the choices of it unavailable. A combo is orderable only while
every slot has an available choice (and the combo item itself is orderable). A choice's item's `stock.changed`
events tell a kiosk when a choice comes and goes: the choice names its `item_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.tables import ComboSlot, Item
from server.domain.translations import pick


async def read_slots(session: AsyncSession, item_ids: Iterable[int]) -> dict[int, list[ComboSlot]]:
    """The slots of those of these items that are combos, by combo, in display order (one statement when none is)."""
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    rows = await session.scalars(
        select(ComboSlot)
        .where(ComboSlot.item_id.in_(ids))
        .order_by(ComboSlot.item_id, ComboSlot.position, ComboSlot.id)
    )
    slots: dict[int, list[ComboSlot]] = {}
    for slot in rows:
        slots.setdefault(slot.item_id, []).append(slot)
    return slots


def component_ids(slots: Mapping[int, list[ComboSlot]]) -> set[int]:
    """The items the slots' choices are."""
    return {choice.item_id for item_slots in slots.values() for slot in item_slots for choice in slot.choices}


def slots_data(
    slots: list[ComboSlot],
    orderable: Mapping[int, bool],
    groups: Callable[[Item], list[dict[str, Any]]],
    chain: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The slots of one combo as menu data; `orderable`: which items the branch sells now (an item missing from it
    is not sold), `groups`: an item's option groups as menu data, `chain`: the locales its items are named in
    (`fallback_chain`), as are the slots."""
    return [
        {
            "id": slot.id,
            "name": pick(slot.translations, "name", chain, slot.name),
            "translations": slot.translations,
            "choices": [
                {
                    "item_id": choice.item_id,
                    "name": pick(choice.item.translations, "name", chain, choice.item.name),
                    "upcharge": choice.upcharge,
                    "is_default": choice.is_default,
                    "available": orderable.get(choice.item_id, False),
                    "allergens": choice.item.allergens,
                    "calories": choice.item.calories,
                    "option_groups": groups(choice.item),
                    "translations": choice.item.translations,
                }
                for choice in slot.choices
            ],
        }
        for slot in slots
    ]


def fillable(slots: list[dict[str, Any]]) -> bool:
    """Whether every slot has an available choice."""
    return all(any(choice["available"] for choice in slot["choices"]) for slot in slots)
