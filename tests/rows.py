"""Rows tests build on directly in the database: a branch, and an item it may offer; and its stock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from persistence.database import Database
from persistence.tables import Branch, Category, Item, ItemAvailability


async def add_branch(db: Database, name: str = "Alpha") -> int:
    """A new branch; its id."""
    async with db.session() as session:
        branch = Branch(name=name, currency="EUR", timezone="Europe/Berlin")
        session.add(branch)
        await session.flush()
        return branch.id


async def add_item(
    db: Database,
    branch_id: int,
    *,
    stock: int | None,
    available: bool = True,
    offered: bool = True,
    updated_at: datetime | None = None,
) -> int:
    """A new item in a category of its own; the branch offers it with this availability and stock unless
    `offered` is False. Its id."""
    async with db.session() as session:
        category = Category(name="Burgers")
        session.add(category)
        await session.flush()
        item = Item(category_id=category.id, name="Cheeseburger", price=650)
        session.add(item)
        await session.flush()
        if offered:
            offer = ItemAvailability(branch_id=branch_id, item_id=item.id, available=available, stock=stock)
            if updated_at is not None:
                offer.updated_at = updated_at
            session.add(offer)
        return item.id


async def stock_of(db: Database, branch_id: int, item_id: int) -> int | None:
    """How many of the item the branch has left (None: unlimited, or not offered)."""
    async with db.session() as session:
        return await session.scalar(
            select(ItemAvailability.stock).where(
                ItemAvailability.branch_id == branch_id, ItemAvailability.item_id == item_id
            )
        )
