"""The menu as a branch's kiosks see it: categories in order, offered items with options and availability.

The same shape serves the `branch:{b}:menu` snapshot and, later, `menu.get`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.tables import Branch, Category, Item, ItemAvailability


async def branch_menu(session: AsyncSession, branch_id: int) -> dict[str, Any]:
    """The menu of one branch: only items it offers and that are not deleted, each with `available` and `stock`."""
    branch = await session.get(Branch, branch_id)
    statement = (
        select(Item, ItemAvailability)
        .join(ItemAvailability, ItemAvailability.item_id == Item.id)
        .join(Category, Category.id == Item.category_id)
        .where(ItemAvailability.branch_id == branch_id, Item.deleted_at.is_(None), Category.deleted_at.is_(None))
        .order_by(Category.position, Category.id, Item.position, Item.id)
    )
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
        "categories": [
            {"id": c.id, "name": c.name, "position": c.position, "items": items_by_category[c.id]}
            for c in categories
            if c.id in items_by_category
        ],
    }


def _item(item: Item, offer: ItemAvailability) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "description": item.description,
        "image_url": item.image_url,
        "price": item.price,
        # The 86 flag, as in `stock.changed`; an item can be ordered when available and stock is null or > 0.
        "available": offer.available,
        "stock": offer.stock,
        "option_groups": [
            {
                "id": group.id,
                "name": group.name,
                "min_select": group.min_select,
                "max_select": group.max_select,
                "choices": [
                    {"id": c.id, "name": c.name, "price_delta": c.price_delta, "is_default": c.is_default}
                    for c in group.choices
                ],
            }
            for group in item.option_groups
        ],
    }
