"""REST routes: the menu's categories, shown in `position` order.

Categories are the chain's catalogue, the same in every branch. Deleting one is soft
(`deleted_at`), and refused while it still holds items that are not deleted. Renaming or
moving one, or giving it a daypart (`daypart_id`, server/api/dayparts.py: its items are sold
only inside that window), sends `menu.item_updated` for each of its items to every branch
offering it. `translations` are its name in other languages (server/api/translations.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from persistence.base import utcnow
from persistence.tables import Category, Item
from server.api.dayparts import DaypartId, daypart_errors
from server.api.fields import PatchBody, Position
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.api.stations import StationCode
from server.api.stock import announce_items
from server.api.translations import NameTranslations, TranslationsOut
from server.auth.permissions import Permission
from server.errors import ApiError, not_found
from server.validation import Input

router = ApiRouter("categories")


class CategoryOut(BaseModel):
    """A category of the menu."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    position: int
    daypart_id: int | None
    station: str | None = Field(description="the kitchen station code its items go to; null: the default station")
    translations: TranslationsOut
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CategoryCreate(Input):
    """A new category."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=120)
    position: Position = 0
    daypart_id: DaypartId | None = None
    station: StationCode | None = None
    translations: NameTranslations = Field(default_factory=dict)


class CategoryUpdate(PatchBody):
    """The fields to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    clearable = frozenset({"daypart_id", "station"})

    name: str | None = Field(default=None, min_length=1, max_length=120)
    position: Position | None = None
    daypart_id: DaypartId | None = None
    station: StationCode | None = None
    translations: NameTranslations | None = Field(default=None, description="the complete new map; {}: none")


class CategoryQuery(PageQuery):
    """Filters of the category list."""

    include_deleted: bool = Field(default=False, description="also list deleted categories")


async def _load(call: Call[Any, Any]) -> Category:
    category_id = call.path_int("category_id")
    category = await call.session.get(Category, category_id)
    if category is None:
        raise not_found("category", category_id)
    return category


@router.get(
    "/categories",
    "List categories",
    permission=Permission.MENU_READ,
    query=CategoryQuery,
    response=Page[CategoryOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_categories(call: Call[None, CategoryQuery]) -> Page[CategoryOut]:
    """Categories in display order (position, then id); deleted ones only with `include_deleted=true`."""
    statement = select(Category).order_by(Category.position, Category.id)
    if not call.query.include_deleted:
        statement = statement.where(Category.deleted_at.is_(None))
    rows, total = await fetch_page(call.session, statement, call.query)
    return Page[CategoryOut](
        items=[CategoryOut.model_validate(row) for row in rows],
        total=total,
        limit=call.query.limit,
        offset=call.query.offset,
    )


@router.get(
    "/categories/{category_id}",
    "Read a category",
    permission=Permission.MENU_READ,
    response=CategoryOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_category(call: Call[None, None]) -> CategoryOut:
    """One category, deleted or not."""
    return CategoryOut.model_validate(await _load(call))


@router.post(
    "/categories",
    "Create a category",
    permission=Permission.MENU_WRITE,
    body=CategoryCreate,
    response=CategoryOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid"),
)
async def create_category(call: Call[CategoryCreate, None]) -> CategoryOut:
    """Add a category to the chain's menu."""
    errors = await daypart_errors(call, call.body.daypart_id)
    if errors:
        raise ApiError("invalid", "invalid body", {"errors": errors})
    body = call.body.model_dump(mode="json")
    category = Category(**body)
    call.session.add(category)
    await call.session.flush()
    return CategoryOut.model_validate(category)


@router.patch(
    "/categories/{category_id}",
    "Update a category",
    permission=Permission.MENU_WRITE,
    body=CategoryUpdate,
    response=CategoryOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def update_category(call: Call[CategoryUpdate, None]) -> CategoryOut:
    """Rename or reorder a category, or put it in a daypart; a deleted category is `conflict`."""
    category = await _load(call)
    if category.deleted_at is not None:
        raise ApiError("conflict", f"category {category.id} is deleted", {"category_id": category.id})
    changes = call.body.model_dump(mode="json", exclude_unset=True)
    errors = await daypart_errors(call, changes["daypart_id"]) if "daypart_id" in changes else []
    if errors:
        raise ApiError("invalid", "invalid body", {"errors": errors})
    for name, value in changes.items():
        setattr(category, name, value)
    await call.session.flush()
    items = await call.session.scalars(
        select(Item.id).where(Item.category_id == category.id, Item.deleted_at.is_(None)).order_by(Item.id)
    )
    await announce_items(call, items.all())
    return CategoryOut.model_validate(category)


@router.delete(
    "/categories/{category_id}",
    "Delete a category",
    permission=Permission.MENU_WRITE,
    errors=("unauthorized", "forbidden", "not_found", "conflict"),
)
async def delete_category(call: Call[None, None]) -> None:
    """Hide a category (soft delete); `conflict` while it still holds items that are not deleted."""
    category = await _load(call)
    if category.deleted_at is not None:
        return
    live_items = await call.session.scalar(
        select(func.count()).select_from(Item).where(Item.category_id == category.id, Item.deleted_at.is_(None))
    )
    if live_items:
        raise ApiError(
            "conflict",
            f"category {category.id} still holds {live_items} items; move or delete them first",
            {"category_id": category.id, "items": live_items},
        )
    # Nothing to announce: its items were all deleted before, and each left the menus then.
    category.deleted_at = utcnow()
