"""REST routes: dayparts, the windows of the day when items and categories are sold (breakfast until 11:00).

Dayparts are chain-wide, like the menu, and their hours are each branch's local time: a
"Breakfast" of 06:00-11:00 is breakfast in Berlin at 06:00 Berlin time and in New York at
06:00 New York time. An `ends_at` before `starts_at` crosses midnight (a late-night menu of
22:00-04:00); equal ones are the whole day. Hours are whole minutes, "HH:MM". An item and a
category name one with `daypart_id`; an item is sold only inside its own window and its
category's. Names are unique, whatever their case.

New hours are announced at once to every branch offering an item they govern
(`menu.item_updated`); the boundaries themselves are announced as they pass
(server/workers/dayparts.py). Deleting a daypart is refused (`conflict`) while items or
categories on the menu name it; deleted ones let go of it.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_serializer
from sqlalchemy import func, or_, select, update

from persistence.tables import Category, Daypart, Item
from server.api.fields import FieldError, PatchBody, field_error
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.api.stock import announce_items
from server.auth.permissions import Permission
from server.errors import ApiError, not_found
from server.validation import Input, RowId

router = ApiRouter("dayparts")

DaypartName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


def _whole_minutes(value: time) -> time:
    if value.second or value.microsecond or value.tzinfo is not None:
        raise ValueError("a time of day in whole minutes, HH:MM, without a time zone (the branch's is used)")
    return value


LocalTime = Annotated[time, AfterValidator(_whole_minutes), Field(description="HH:MM, the branch's local time")]
DaypartId = Annotated[RowId, Field(description="its daypart: sold only inside that window; null: at any time")]


class DaypartOut(BaseModel):
    """A daypart: its name and its window of local time."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    starts_at: time
    ends_at: time
    created_at: datetime
    updated_at: datetime

    @field_serializer("starts_at", "ends_at")
    def _hhmm(self, value: time) -> str:
        return f"{value:%H:%M}"


class DaypartCreate(Input):
    """A new daypart."""

    model_config = ConfigDict(extra="forbid")

    name: DaypartName
    starts_at: LocalTime
    ends_at: LocalTime


class DaypartUpdate(PatchBody):
    """A new name or new hours for a daypart."""

    name: DaypartName | None = None
    starts_at: LocalTime | None = None
    ends_at: LocalTime | None = None


async def daypart_errors(call: Call[Any, Any], daypart_id: int | None) -> list[FieldError]:
    """`daypart_id` as a field error when it names no daypart (items' and categories' bodies)."""
    if daypart_id is None or await call.session.get(Daypart, daypart_id) is not None:
        return []
    return [field_error(("daypart_id",), f"daypart {daypart_id} does not exist", "unknown_daypart")]


async def _load(call: Call[Any, Any], *, lock: bool = False) -> Daypart:
    daypart_id = call.path_int("daypart_id")
    daypart = await call.session.get(Daypart, daypart_id, with_for_update=lock)
    if daypart is None:
        raise not_found("daypart", daypart_id)
    return daypart


async def _require_free_name(call: Call[Any, Any], name: str, renamed: Daypart | None = None) -> None:
    statement = select(Daypart.id).where(func.lower(Daypart.name) == name.lower())
    if renamed is not None:
        statement = statement.where(Daypart.id != renamed.id)
    taken = await call.session.scalar(statement)
    if taken is not None:
        raise ApiError("conflict", f"a daypart named {name} already exists", {"field": "name", "daypart_id": taken})


async def _governed_items(call: Call[Any, Any], daypart_id: int) -> list[int]:
    """The items on the menu inside the daypart, by their own or their category's daypart."""
    rows = await call.session.scalars(
        select(Item.id)
        .join(Category, Category.id == Item.category_id)
        .where(
            or_(Item.daypart_id == daypart_id, Category.daypart_id == daypart_id),
            Item.deleted_at.is_(None),
            Category.deleted_at.is_(None),
        )
        .order_by(Item.id)
    )
    return list(rows.all())


@router.get(
    "/dayparts",
    "List dayparts",
    permission=Permission.MENU_READ,
    query=PageQuery,
    response=Page[DaypartOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_dayparts(call: Call[None, PageQuery]) -> Page[DaypartOut]:
    """Every daypart of the chain, by id."""
    rows, total = await fetch_page(call.session, select(Daypart).order_by(Daypart.id), call.query)
    return Page[DaypartOut](
        items=[DaypartOut.model_validate(row) for row in rows],
        total=total,
        limit=call.query.limit,
        offset=call.query.offset,
    )


@router.get(
    "/dayparts/{daypart_id}",
    "Read a daypart",
    permission=Permission.MENU_READ,
    response=DaypartOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_daypart(call: Call[None, None]) -> DaypartOut:
    """One daypart."""
    return DaypartOut.model_validate(await _load(call))


@router.post(
    "/dayparts",
    "Create a daypart",
    permission=Permission.MENU_WRITE,
    body=DaypartCreate,
    response=DaypartOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid", "conflict"),
)
async def create_daypart(call: Call[DaypartCreate, None]) -> DaypartOut:
    """Add a daypart; its name is unique, whatever its case. Items and categories join it by `daypart_id`."""
    body = call.body
    await _require_free_name(call, body.name)
    daypart = Daypart(name=body.name, starts_at=body.starts_at, ends_at=body.ends_at)
    call.session.add(daypart)
    await call.session.flush()
    return DaypartOut.model_validate(daypart)


@router.patch(
    "/dayparts/{daypart_id}",
    "Update a daypart",
    permission=Permission.MENU_WRITE,
    body=DaypartUpdate,
    response=DaypartOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def update_daypart(call: Call[DaypartUpdate, None]) -> DaypartOut:
    """Rename a daypart or move its hours; every branch offering an item it governs hears the item at once."""
    daypart = await _load(call)
    changes = call.body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] != daypart.name:
        await _require_free_name(call, changes["name"], renamed=daypart)
    for name, value in changes.items():
        setattr(daypart, name, value)
    await call.session.flush()
    await announce_items(call, await _governed_items(call, daypart.id))
    return DaypartOut.model_validate(daypart)


@router.delete(
    "/dayparts/{daypart_id}",
    "Delete a daypart",
    permission=Permission.MENU_WRITE,
    errors=("unauthorized", "forbidden", "not_found", "conflict"),
)
async def delete_daypart(call: Call[None, None]) -> None:
    """Delete a daypart; `conflict` while items or categories that are not deleted name it."""
    daypart = await _load(call, lock=True)
    items = await call.session.scalar(
        select(func.count()).select_from(Item).where(Item.daypart_id == daypart.id, Item.deleted_at.is_(None))
    )
    categories = await call.session.scalar(
        select(func.count())
        .select_from(Category)
        .where(Category.daypart_id == daypart.id, Category.deleted_at.is_(None))
    )
    if items or categories:
        raise ApiError(
            "conflict",
            f"{items} items and {categories} categories are in daypart {daypart.name}; take them out first",
            {"daypart_id": daypart.id, "items": items, "categories": categories},
        )
    # Deleted items and categories are off every menu: they let go of it.
    for row in (Item, Category):
        await call.session.execute(
            update(row).where(row.daypart_id == daypart.id, row.deleted_at.is_not(None)).values(daypart_id=None)
        )
    await call.session.delete(daypart)
