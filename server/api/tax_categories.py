"""REST routes: tax categories, the kinds of goods (food, drinks, alcohol) a branch rates for tax.

Tax categories are chain-wide, like the menu: an item names one (`tax_category_id`), and
each branch gives each category a rate per service mode (`tax_rates`, server/api/branches.py).
An item without a category, or of one the branch gives no rate in the cart's mode, is taxed
at the branch's `tax_rate_bp`. Names are unique, whatever their case.

Deleting a category is for good, and refused (`conflict`) while an item on the menu or a
branch's rates still name it. Deleted items let go of it: an order keeps the rate each of its
lines was charged at, not the category.

A branch's rates are a JSON list, not a foreign key, so the two writers lock the category
row against each other: a branch write takes it shared (`locked_missing`), a delete takes it
for update. On PostgreSQL either one waits for the other, and so sees its change.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import func, select, update

from persistence.tables import Branch, Item, TaxCategory
from server.api.fields import PatchBody
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.errors import ApiError, not_found
from server.validation import Input

router = ApiRouter("tax")

TaxCategoryName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class TaxCategoryOut(BaseModel):
    """A tax category."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime
    updated_at: datetime


class TaxCategoryCreate(Input):
    """A new tax category."""

    model_config = ConfigDict(extra="forbid")

    name: TaxCategoryName


class TaxCategoryUpdate(PatchBody):
    """A new name for a tax category."""

    name: TaxCategoryName | None = None


async def locked_missing(call: Call[Any, Any], ids: Collection[int]) -> set[int]:
    """Those of `ids` that are no tax category; the others are locked (shared) until the call commits, so that
    none is deleted while what names it is written."""
    if not ids:
        return set()
    statement = select(TaxCategory.id).where(TaxCategory.id.in_(set(ids))).with_for_update(read=True)
    found = set((await call.session.scalars(statement)).all())
    return set(ids) - found


async def _load(call: Call[Any, Any], *, lock: bool = False) -> TaxCategory:
    category_id = call.path_int("tax_category_id")
    category = await call.session.get(TaxCategory, category_id, with_for_update=lock)
    if category is None:
        raise not_found("tax category", category_id)
    return category


async def _require_free_name(call: Call[Any, Any], name: str, renamed: TaxCategory | None = None) -> None:
    # Case-insensitive, so that a branch's rates never list "Food" beside "food".
    statement = select(TaxCategory.id).where(func.lower(TaxCategory.name) == name.lower())
    if renamed is not None:
        statement = statement.where(TaxCategory.id != renamed.id)
    taken = await call.session.scalar(statement)
    if taken is not None:
        raise ApiError(
            "conflict", f"a tax category named {name} already exists", {"field": "name", "tax_category_id": taken}
        )


async def _branches_rating(call: Call[Any, Any], category_id: int) -> list[int]:
    """The ids of the branches whose rates name the category."""
    # Read whole and filtered here: the two databases query JSON differently, and a chain has few branches.
    rows = await call.session.execute(select(Branch.id, Branch.tax_rates).order_by(Branch.id))
    return [
        branch_id for branch_id, rates in rows if any(rate["tax_category_id"] == category_id for rate in rates or [])
    ]


@router.get(
    "/tax-categories",
    "List tax categories",
    permission=Permission.MENU_READ,
    query=PageQuery,
    response=Page[TaxCategoryOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_tax_categories(call: Call[None, PageQuery]) -> Page[TaxCategoryOut]:
    """Every tax category of the chain, by id."""
    rows, total = await fetch_page(call.session, select(TaxCategory).order_by(TaxCategory.id), call.query)
    return Page[TaxCategoryOut](
        items=[TaxCategoryOut.model_validate(row) for row in rows],
        total=total,
        limit=call.query.limit,
        offset=call.query.offset,
    )


@router.get(
    "/tax-categories/{tax_category_id}",
    "Read a tax category",
    permission=Permission.MENU_READ,
    response=TaxCategoryOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_tax_category(call: Call[None, None]) -> TaxCategoryOut:
    """One tax category."""
    return TaxCategoryOut.model_validate(await _load(call))


@router.post(
    "/tax-categories",
    "Create a tax category",
    permission=Permission.MENU_WRITE,
    body=TaxCategoryCreate,
    response=TaxCategoryOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid", "conflict"),
)
async def create_tax_category(call: Call[TaxCategoryCreate, None]) -> TaxCategoryOut:
    """Add a tax category; its name is unique, whatever its case. Branches rate it with their `tax_rates`."""
    await _require_free_name(call, call.body.name)
    category = TaxCategory(name=call.body.name)
    call.session.add(category)
    await call.session.flush()
    return TaxCategoryOut.model_validate(category)


@router.patch(
    "/tax-categories/{tax_category_id}",
    "Update a tax category",
    permission=Permission.MENU_WRITE,
    body=TaxCategoryUpdate,
    response=TaxCategoryOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def update_tax_category(call: Call[TaxCategoryUpdate, None]) -> TaxCategoryOut:
    """Rename a tax category; items and rates keep naming it by id."""
    category = await _load(call)
    changes = call.body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] != category.name:
        await _require_free_name(call, changes["name"], renamed=category)
    for name, value in changes.items():
        setattr(category, name, value)
    await call.session.flush()
    return TaxCategoryOut.model_validate(category)


@router.delete(
    "/tax-categories/{tax_category_id}",
    "Delete a tax category",
    permission=Permission.MENU_WRITE,
    errors=("unauthorized", "forbidden", "not_found", "conflict"),
)
async def delete_tax_category(call: Call[None, None]) -> None:
    """Delete a tax category; `conflict` while items that are not deleted, or any branch's rates, name it."""
    category = await _load(call, lock=True)
    items = await call.session.scalar(
        select(func.count()).select_from(Item).where(Item.tax_category_id == category.id, Item.deleted_at.is_(None))
    )
    if items:
        raise ApiError(
            "conflict",
            f"{items} items are of tax category {category.name}; give them another category first",
            {"tax_category_id": category.id, "items": items},
        )
    branches = await _branches_rating(call, category.id)
    if branches:
        # Only the branches the caller may see are named: others are not found, as if they did not exist.
        scope = call.principal.branch_scope()
        visible = [branch_id for branch_id in branches if scope is None or branch_id == scope]
        raise ApiError(
            "conflict",
            f"the tax rates of {len(branches)} branches name tax category {category.name}; remove those rates first",
            {"tax_category_id": category.id, "branches": len(branches), "branch_ids": visible},
        )
    # Deleted items are off every menu; orders that name them keep the rates they were charged at.
    await call.session.execute(
        update(Item)
        .where(Item.tax_category_id == category.id, Item.deleted_at.is_not(None))
        .values(tax_category_id=None)
    )
    await call.session.delete(category)
