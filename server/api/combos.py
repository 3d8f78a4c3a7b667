"""REST routes: combos (meal deals), an item's slots and the items each slot may be filled with.

An item becomes a combo when it gets slots (`PUT /items/{item_id}/combo`): "Main", "Side", "Drink", in the order
sent, each filled by exactly one of its `choices` when a kiosk adds the combo to a cart. A choice is another item
of the catalogue, at an `upcharge` (0 or more minor units) over the combo's price; its own option groups (a
drink's size) apply to it inside the combo as they do alone; `is_default` (at most one a slot) fills the slot when
a kiosk sends no components. The combo keeps its own price, tax category, daypart and stock like any item; each
component's stock is taken from that item's own when an order is placed.

The slots are written as a whole: a PUT sends the complete list. A slot sent with its `id` is kept in place (cart
lines refer to slot ids), one without is created, those left out are deleted; a slot's choices are replaced as
sent. A combo cannot be a choice of another combo, nor can a combo's choice be a combo. `DELETE` takes the slots
away: the item is sold as a plain item again. Every branch offering the combo hears it (`menu.item_updated`); cart
lines whose filling no longer fits are flagged (`options`) and refused when placed.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from persistence.base import utcnow
from persistence.tables import ComboSlot, ComboSlotChoice, Item
from server.api.fields import FieldError, field_error
from server.api.routing import ApiRouter, Call
from server.api.stock import announce_items, load_item
from server.api.translations import NameTranslations, TranslationsOut
from server.auth.permissions import Permission
from server.errors import ApiError
from server.validation import INT32_MAX, Input, RowId

router = ApiRouter("combos")

MAX_SLOTS = 10
MAX_CHOICES = 30
SlotName = Annotated[str, Field(min_length=1, max_length=120, pattern=r"\S")]
Upcharge = Annotated[int, Field(strict=True, ge=0, le=INT32_MAX, description="minor units over the combo's price")]


class SlotChoiceOut(BaseModel):
    """An item a slot may be filled with."""

    item_id: int
    name: str = Field(description="the item's name")
    upcharge: int
    is_default: bool
    position: int


class SlotOut(BaseModel):
    """A slot of a combo, filled by exactly one of its choices."""

    id: int
    name: str
    position: int
    translations: TranslationsOut
    choices: list[SlotChoiceOut]


class ComboOut(BaseModel):
    """A combo item's slots in display order (none: the item is not a combo)."""

    item_id: int
    slots: list[SlotOut]


class SlotChoiceIn(Input):
    """An item a slot may be filled with, at `upcharge` over the combo's price."""

    item_id: RowId
    upcharge: Upcharge = 0
    is_default: bool = False


class SlotIn(Input):
    """A slot: its `id` to keep one in place (left out: a new slot), its name and its choices in display order."""

    id: RowId | None = None
    name: SlotName
    translations: NameTranslations = Field(default_factory=dict)
    choices: list[SlotChoiceIn] = Field(min_length=1, max_length=MAX_CHOICES)


class ComboIn(Input):
    """The whole list of a combo's slots, in display order."""

    slots: list[SlotIn] = Field(min_length=1, max_length=MAX_SLOTS)


async def _slots(call: Call[Any, Any], item_id: int) -> list[ComboSlot]:
    rows = await call.session.scalars(
        select(ComboSlot).where(ComboSlot.item_id == item_id).order_by(ComboSlot.position, ComboSlot.id)
    )
    return list(rows.all())


async def _out(call: Call[Any, Any], item_id: int) -> ComboOut:
    slots = await _slots(call, item_id)
    items = {choice.item_id for slot in slots for choice in slot.choices}
    rows = await call.session.execute(select(Item.id, Item.name).where(Item.id.in_(items)))
    names = {row.id: row.name for row in rows}
    return ComboOut(
        item_id=item_id,
        slots=[
            SlotOut(
                id=slot.id,
                name=slot.name,
                position=slot.position,
                translations=slot.translations,
                choices=[
                    SlotChoiceOut(
                        item_id=c.item_id,
                        name=names.get(c.item_id, ""),
                        upcharge=c.upcharge,
                        is_default=c.is_default,
                        position=c.position,
                    )
                    for c in slot.choices
                ],
            )
            for slot in slots
        ],
    )


async def _errors(call: Call[Any, Any], item: Item, body: ComboIn, kept: dict[int, ComboSlot]) -> list[FieldError]:
    """Every problem of the body: unknown slot ids, repeated items or defaults in a slot, choices that are not items
    on the menu, and combos inside combos."""
    errors: list[FieldError] = []
    wanted = {choice.item_id for slot in body.slots for choice in slot.choices}
    found = {
        row.id: row
        for row in (await call.session.execute(select(Item.id, Item.deleted_at).where(Item.id.in_(wanted)))).all()
    }
    combos = set((await call.session.scalars(select(ComboSlot.item_id).where(ComboSlot.item_id.in_(wanted)))).all())
    if await call.session.scalar(select(ComboSlotChoice.id).where(ComboSlotChoice.item_id == item.id).limit(1)):
        message = f"item {item.id} is a choice of another combo: a combo cannot be a component"
        errors.append(field_error(("slots",), message, "nested_combo"))
    for n, slot in enumerate(body.slots):
        if slot.id is not None and slot.id not in kept:
            errors.append(
                field_error(("slots", n, "id"), f"slot {slot.id} is not a slot of this combo", "unknown_slot")
            )
        if sum(1 for choice in slot.choices if choice.is_default) > 1:
            errors.append(field_error(("slots", n, "choices"), "at most one default choice a slot", "defaults"))
        seen: set[int] = set()
        for m, choice in enumerate(slot.choices):
            path = ("slots", n, "choices", m, "item_id")
            row = found.get(choice.item_id)
            if choice.item_id in seen:
                errors.append(field_error(path, f"item {choice.item_id} is listed twice in the slot", "repeated_item"))
            elif row is None or row.deleted_at is not None:
                errors.append(field_error(path, f"item {choice.item_id} is not on the menu", "unknown_item"))
            elif choice.item_id == item.id or choice.item_id in combos:
                errors.append(field_error(path, f"item {choice.item_id} is a combo", "nested_combo"))
            seen.add(choice.item_id)
    return errors


@router.get(
    "/items/{item_id}/combo",
    "Read a combo's slots",
    permission=Permission.MENU_READ,
    response=ComboOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_combo(call: Call[None, None]) -> ComboOut:
    """The item's slots with their choices, in display order; none when it is not a combo."""
    item = await load_item(call)
    return await _out(call, item.id)


@router.route(
    "PUT",
    "/items/{item_id}/combo",
    "Make an item a combo, or replace its slots",
    permission=Permission.MENU_WRITE,
    body=ComboIn,
    response=ComboOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def put_combo(call: Call[ComboIn, None]) -> ComboOut:
    """Set the combo's slots to the list sent: slots sent with their ids are kept in place, the others created, those
    left out deleted; each slot's choices are replaced as sent."""
    item = await load_item(call)
    if item.deleted_at is not None:
        raise ApiError("conflict", f"item {item.id} is deleted", {"item_id": item.id})
    kept = {slot.id: slot for slot in await _slots(call, item.id)}
    errors = await _errors(call, item, call.body, kept)
    if errors:
        raise ApiError("invalid", "invalid body", {"errors": errors})
    sent = {slot.id for slot in call.body.slots if slot.id is not None}
    for slot_id, slot in kept.items():
        if slot_id not in sent:
            await call.session.delete(slot)
    slots = []
    for position, slot_in in enumerate(call.body.slots):
        slot = kept[slot_in.id] if slot_in.id is not None else ComboSlot(item_id=item.id, choices=[])
        slot.name, slot.position = slot_in.name.strip(), position
        slot.translations = slot_in.model_dump(mode="json")["translations"]
        # The old choices go first: a slot holds an item once, and a flush inserts before it deletes.
        slot.choices.clear()
        call.session.add(slot)
        slots.append((slot, slot_in))
    await call.session.flush()
    for slot, slot_in in slots:
        slot.choices.extend(
            ComboSlotChoice(item_id=c.item_id, upcharge=c.upcharge, is_default=c.is_default, position=m)
            for m, c in enumerate(slot_in.choices)
        )
    item.updated_at = utcnow()
    await call.session.flush()
    await announce_items(call, [item.id])
    return await _out(call, item.id)


@router.delete(
    "/items/{item_id}/combo",
    "Take a combo's slots away",
    permission=Permission.MENU_WRITE,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def delete_combo(call: Call[None, None]) -> None:
    """Delete the item's slots: it is sold as a plain item again (cart lines with components are flagged)."""
    item = await load_item(call)
    slots = await _slots(call, item.id)
    for slot in slots:
        await call.session.delete(slot)
    if slots:
        item.updated_at = utcnow()
        await call.session.flush()
        await announce_items(call, [item.id])
