"""The menu as a branch's kiosks see it: categories in order, offered items with options and availability.

One shape everywhere: the `branch:{b}:menu` snapshot and the `menu.get` reply are
`branch_menu`; `menu.item_updated` carries one item of it (`branch_item`), and
`stock.changed` carries `stock_changed`. The models below describe that shape for the
AsyncAPI document and the command replies; the dicts are built directly.

Items and choices carry their allergens and calories, a choice's being what it adds to its item's: a kiosk works
out a line's from the item and the choices picked, and may filter the menu by them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.enums import Allergen, ServiceMode
from persistence.tables import Branch, Category, Item, ItemAvailability


class MenuChoice(BaseModel):
    """One choice of an option group; `price_delta` in minor units, `allergens` and `calories` what it adds."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    price_delta: int
    is_default: bool
    allergens: list[Allergen] = Field(description="the allergens it adds to its item's, in the EU's order")
    calories: int | None = Field(description="the kcal it adds to its item's (may be negative); null: not known")


class MenuOptionGroup(BaseModel):
    """A group of choices of an item, and how many of them a cart line may hold."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    min_select: int
    max_select: int
    choices: list[MenuChoice]


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
    orderable: bool = Field(description="available and stock null or above 0: whether a kiosk may sell it now")
    option_groups: list[MenuOptionGroup]


class MenuCategory(BaseModel):
    """A category with the items the branch offers in it, in display order."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    position: int
    items: list[MenuItem]


class MenuSnapshot(BaseModel):
    """`branch:{b}:menu` and the `menu.get` reply: the branch's menu in display order, with availability."""

    model_config = ConfigDict(extra="forbid")

    branch_id: int
    currency: str | None
    service_modes: list[ServiceMode] = Field(description="eat in, take away: what the branch offers, default first")
    categories: list[MenuCategory]


class MenuItemRemoved(BaseModel):
    """`menu.item_removed`: the item left the branch's menu."""

    model_config = ConfigDict(extra="forbid")

    branch_id: int
    item_id: int


def is_orderable(available: bool, stock: int | None) -> bool:
    """Whether a kiosk may sell the item: it is not 86'd, and its stock is not counted or not used up."""
    return available and (stock is None or stock > 0)


def stock_changed(branch_id: int, item_id: int, available: bool, stock: int | None) -> dict[str, Any]:
    """The data of a `stock.changed` event: an item's availability and stock in a branch after a change."""
    return {
        "branch_id": branch_id,
        "item_id": item_id,
        "available": available,
        "stock": stock,
        "orderable": is_orderable(available, stock),
    }


def _offered(branch_id: int) -> Select[Item, ItemAvailability]:
    """Items the branch offers that are on its menu: neither they nor their category are deleted."""
    return (
        select(Item, ItemAvailability)
        .join(ItemAvailability, ItemAvailability.item_id == Item.id)
        .join(Category, Category.id == Item.category_id)
        .where(ItemAvailability.branch_id == branch_id, Item.deleted_at.is_(None), Category.deleted_at.is_(None))
    )


async def branch_menu(session: AsyncSession, branch_id: int) -> dict[str, Any]:
    """The menu of one branch: only items it offers and that are not deleted, each with its availability."""
    branch = await session.get(Branch, branch_id)
    statement = _offered(branch_id).order_by(Category.position, Category.id, Item.position, Item.id)
    rows = (await session.execute(statement)).all()
    categories = (
        await session.scalars(
            select(Category).where(Category.deleted_at.is_(None)).order_by(Category.position, Category.id)
        )
    ).all()
    items_by_category: dict[int, list[dict[str, Any]]] = {}
    for item, offer in rows:
        items_by_category.setdefault(item.category_id, []).append(_item(item, offer))
    return {
        "branch_id": branch_id,
        "currency": branch.currency if branch else None,
        "service_modes": branch.service_modes if branch else [],
        "categories": [
            {"id": c.id, "name": c.name, "position": c.position, "items": items_by_category[c.id]}
            for c in categories
            if c.id in items_by_category
        ],
    }


async def branch_item(session: AsyncSession, branch_id: int, item_id: int) -> dict[str, Any] | None:
    """One item exactly as the branch's menu shows it; None when it is not on that menu."""
    # populate_existing: within a transaction that just changed the item, read what was written
    # (option groups in display order, the stock the UPDATE left) rather than the objects as they were built.
    statement = _offered(branch_id).where(Item.id == item_id).execution_options(populate_existing=True)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else _item(row[0], row[1])


def _item(item: Item, offer: ItemAvailability) -> dict[str, Any]:
    return {
        "id": item.id,
        "category_id": item.category_id,
        "name": item.name,
        "description": item.description,
        "image_url": item.image_url,
        "price": item.price,
        "allergens": item.allergens,
        "calories": item.calories,
        "position": item.position,
        "available": offer.available,
        "stock": offer.stock,
        "orderable": is_orderable(offer.available, offer.stock),
        "option_groups": [
            {
                "id": group.id,
                "name": group.name,
                "min_select": group.min_select,
                "max_select": group.max_select,
                "choices": [
                    {
                        "id": c.id,
                        "name": c.name,
                        "price_delta": c.price_delta,
                        "is_default": c.is_default,
                        "allergens": c.allergens,
                        "calories": c.calories,
                    }
                    for c in group.choices
                ],
            }
            for group in item.option_groups
        ],
    }
