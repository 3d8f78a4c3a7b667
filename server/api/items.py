"""REST routes: menu items with their option groups.

Items are the chain's catalogue. An item's option groups are written as a whole: a
PATCH that sends `option_groups` sends the complete new list. A group or choice sent
with its `id` is updated in place, so ids stay stable (carts refer to choice ids); one
sent without an id is created; those left out are deleted. Deleting an item is soft:
orders keep pointing at it. Which branches offer an item, and its stock there, is
`server/api/stock.py`. Every branch that offers an item hears of its changes on
`branch:{b}:menu`: `menu.item_updated`, or `menu.item_removed` when it is deleted.

`tax_category_id` is the item's tax category (server/api/tax_categories.py): each branch
rates it per service mode; null, or a category a branch gives no rate in a cart's mode,
is taxed at that branch's `tax_rate_bp`. `daypart_id` is its window of the day
(server/api/dayparts.py): sold only inside it, and inside its category's.

`allergens` and `calories` say what is in an item, and in each choice what it adds (server/api/nutrition.py).
`translations` are its, its groups' and its choices' texts in other languages (server/api/translations.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, UrlConstraints
from sqlalchemy import select

from persistence.base import utcnow
from persistence.enums import Allergen
from persistence.tables import Category, Item, ItemAvailability
from server.api.dayparts import DaypartId, daypart_errors
from server.api.fields import FieldError, PatchBody, Position, field_error
from server.api.nutrition import Allergens, Calories
from server.api.option_groups import (
    Name,
    OptionGroupIn,
    OptionGroupOut,
    id_errors,
    replace_option_groups,
    rule_errors,
)
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.api.stations import StationCode
from server.api.stock import StockOut, announce_items, load_item
from server.api.tax_categories import locked_missing
from server.api.translations import ItemTranslations, TranslationsOut
from server.auth.permissions import Permission
from server.errors import ApiError, not_found
from server.validation import INT32_MAX, Input, RowId

router = ApiRouter("items")

# Money is whole minor units (cents): strict, so 6.5 or "650" is refused rather than converted.
Price = Annotated[int, Field(strict=True, ge=0, le=INT32_MAX, description="minor units (cents)")]
ImageUrl = Annotated[HttpUrl, UrlConstraints(max_length=1000)]
TaxCategoryId = Annotated[RowId, Field(description="its tax category; null: taxed at the branch's default rate")]


class ItemFields(BaseModel):
    """What every view of an item shows."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    category_id: int
    name: str
    description: str | None
    image_url: str | None
    price: int
    tax_category_id: int | None
    allergens: list[Allergen] = Field(description="the allergens it contains, without its options'")
    calories: int | None = Field(description="kcal of one, without its options; null: not known")
    daypart_id: int | None
    station: str | None = Field(description="the kitchen station code it goes to; null: its category's")
    position: int
    translations: TranslationsOut
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime
    option_groups: list[OptionGroupOut]


class ItemOut(ItemFields):
    """An item in a list; `availability` is its stock in the branch the list was asked for."""

    availability: StockOut | None = None


class ItemDetailOut(ItemFields):
    """One item, with its availability in every branch the caller may see."""

    availability: list[StockOut]


class ItemCreate(Input):
    """A new item."""

    model_config = ConfigDict(extra="forbid")

    category_id: RowId
    name: Name
    description: str | None = Field(default=None, max_length=1000)
    image_url: ImageUrl | None = None
    price: Price
    tax_category_id: TaxCategoryId | None = None
    allergens: Allergens = Field(default_factory=list)
    calories: Calories | None = None
    daypart_id: DaypartId | None = None
    station: StationCode | None = None
    position: Position = 0
    translations: ItemTranslations = Field(default_factory=dict)
    option_groups: list[OptionGroupIn] = Field(default_factory=list, max_length=50)


class ItemUpdate(PatchBody):
    """The fields to change; those left out keep their value. `option_groups`, when sent, is the complete list."""

    clearable = frozenset({"description", "image_url", "tax_category_id", "calories", "daypart_id", "station"})

    category_id: RowId | None = None
    name: Name | None = None
    description: str | None = Field(default=None, max_length=1000)
    image_url: ImageUrl | None = None
    price: Price | None = None
    tax_category_id: TaxCategoryId | None = None
    allergens: Allergens | None = None
    calories: Calories | None = None
    daypart_id: DaypartId | None = None
    station: StationCode | None = None
    position: Position | None = None
    translations: ItemTranslations | None = Field(default=None, description="the complete new map; {}: none")
    option_groups: list[OptionGroupIn] | None = Field(default=None, max_length=50)


class ItemQuery(PageQuery):
    """Filters of the item list."""

    category_id: RowId | None = Field(default=None, description="only items of this category")
    q: str | None = Field(default=None, max_length=120, description="only items whose name contains this (any case)")
    include_deleted: bool = Field(default=False, description="also list deleted items")
    branch_id: RowId | None = Field(
        default=None, description="only items this branch offers, each with its availability there"
    )


async def _category_errors(call: Call[Any, Any], category_id: int) -> list[FieldError]:
    category = await call.session.get(Category, category_id)
    if category is None:
        return [field_error(("category_id",), f"category {category_id} does not exist", "unknown_category")]
    if category.deleted_at is not None:
        return [field_error(("category_id",), f"category {category_id} is deleted", "deleted_category")]
    return []


async def _tax_category_errors(call: Call[Any, Any], tax_category_id: int | None) -> list[FieldError]:
    if tax_category_id is None or not await locked_missing(call, [tax_category_id]):
        return []
    return [field_error(("tax_category_id",), f"tax category {tax_category_id} does not exist", "unknown_tax_category")]


async def _detail(call: Call[Any, Any], item_id: int) -> ItemDetailOut:
    """The item as stored, with its availability in the branches the caller may see; `not_found` when missing."""
    # populate_existing: after a write, groups and choices come back in display order rather than as sent.
    item = await call.session.scalar(select(Item).where(Item.id == item_id).execution_options(populate_existing=True))
    if item is None:
        raise not_found("item", item_id)
    statement = select(ItemAvailability).where(ItemAvailability.item_id == item_id).order_by(ItemAvailability.branch_id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(ItemAvailability.branch_id == scope)
    availability = [StockOut.model_validate(row) for row in await call.session.scalars(statement)]
    return ItemDetailOut(**ItemFields.model_validate(item).model_dump(), availability=availability)


@router.get(
    "/items",
    "List items",
    permission=Permission.MENU_READ,
    query=ItemQuery,
    response=Page[ItemOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_items(call: Call[None, ItemQuery]) -> Page[ItemOut]:
    """Items in display order (position, then id), with their option groups; deleted ones only on request.

    With `branch_id`, only the items that branch offers, each with its `availability` there.
    """
    query = call.query
    statement = select(Item).order_by(Item.position, Item.id)
    if query.category_id is not None:
        statement = statement.where(Item.category_id == query.category_id)
    if query.q:
        statement = statement.where(Item.name.icontains(query.q, autoescape=True))
    if not query.include_deleted:
        statement = statement.where(Item.deleted_at.is_(None))
    if query.branch_id is not None:
        call.principal.require_branch(query.branch_id)
        statement = statement.join(
            ItemAvailability,
            (ItemAvailability.item_id == Item.id) & (ItemAvailability.branch_id == query.branch_id),
        )
    rows, total = await fetch_page(call.session, statement, query)
    availability: dict[int, StockOut] = {}
    if query.branch_id is not None and rows:
        offered = await call.session.scalars(
            select(ItemAvailability).where(
                ItemAvailability.branch_id == query.branch_id, ItemAvailability.item_id.in_([row.id for row in rows])
            )
        )
        availability = {row.item_id: StockOut.model_validate(row) for row in offered}
    items = [
        ItemOut(**ItemFields.model_validate(row).model_dump(), availability=availability.get(row.id)) for row in rows
    ]
    return Page[ItemOut](items=items, total=total, limit=query.limit, offset=query.offset)


@router.get(
    "/items/{item_id}",
    "Read an item",
    permission=Permission.MENU_READ,
    response=ItemDetailOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_item(call: Call[None, None]) -> ItemDetailOut:
    """One item (deleted or not) with its option groups and its availability in the branches the caller may see."""
    return await _detail(call, call.path_int("item_id"))


@router.post(
    "/items",
    "Create an item",
    permission=Permission.MENU_WRITE,
    body=ItemCreate,
    response=ItemDetailOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid"),
)
async def create_item(call: Call[ItemCreate, None]) -> ItemDetailOut:
    """Add an item, with its option groups, to a category of the chain's menu (no branch offers it yet)."""
    body = call.body
    item = Item(
        category_id=body.category_id,
        name=body.name,
        description=body.description,
        image_url=str(body.image_url) if body.image_url else None,
        price=body.price,
        tax_category_id=body.tax_category_id,
        allergens=[allergen.value for allergen in body.allergens],
        calories=body.calories,
        daypart_id=body.daypart_id,
        station=body.station,
        position=body.position,
        translations=body.model_dump(mode="json", include={"translations"}, exclude_none=True)["translations"],
    )
    errors = (
        await _category_errors(call, body.category_id)
        + await _tax_category_errors(call, body.tax_category_id)
        + await daypart_errors(call, body.daypart_id)
        + rule_errors(body.option_groups)
        + id_errors(item, body.option_groups)
    )
    if errors:
        raise ApiError("invalid", "invalid body", {"errors": errors})
    replace_option_groups(item, body.option_groups)
    call.session.add(item)
    await call.session.flush()
    return await _detail(call, item.id)


@router.patch(
    "/items/{item_id}",
    "Update an item",
    permission=Permission.MENU_WRITE,
    body=ItemUpdate,
    response=ItemDetailOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def update_item(call: Call[ItemUpdate, None]) -> ItemDetailOut:
    """Change an item; `option_groups`, when sent, replaces the whole list (ids sent are kept, others deleted)."""
    item = await load_item(call)
    if item.deleted_at is not None:
        raise ApiError("conflict", f"item {item.id} is deleted", {"item_id": item.id})
    body = call.body
    changes = body.model_dump(mode="json", exclude_unset=True, exclude={"option_groups"})
    if body.translations is not None:
        # A description left out of a locale is none there, not null.
        changes["translations"] = body.model_dump(mode="json", include={"translations"}, exclude_none=True)[
            "translations"
        ]
    errors: list[FieldError] = []
    if "category_id" in changes:
        errors += await _category_errors(call, changes["category_id"])
    if "tax_category_id" in changes:
        errors += await _tax_category_errors(call, changes["tax_category_id"])
    if "daypart_id" in changes:
        errors += await daypart_errors(call, changes["daypart_id"])
    if body.option_groups is not None:
        errors += rule_errors(body.option_groups) + id_errors(item, body.option_groups)
    if errors:
        raise ApiError("invalid", "invalid body", {"errors": errors})
    for name, value in changes.items():
        setattr(item, name, value)
    if body.option_groups is not None:
        replace_option_groups(item, body.option_groups)
    # Group changes alone leave the item's row untouched; clients still need to see it changed.
    item.updated_at = utcnow()
    await call.session.flush()
    await announce_items(call, [item.id])
    return await _detail(call, item.id)


@router.delete(
    "/items/{item_id}",
    "Delete an item",
    permission=Permission.MENU_WRITE,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def delete_item(call: Call[None, None]) -> None:
    """Hide an item from the menu (soft delete): orders that name it keep it, and it can still be read by id."""
    item = await load_item(call)
    if item.deleted_at is None:
        item.deleted_at = utcnow()
        await call.session.flush()
        await announce_items(call, [item.id])
