"""Reserving and giving back stock, each item with one conditional UPDATE (DESIGN.md decision 7).

Never read-then-write: `stock >= qty` is checked by the UPDATE itself, so concurrent
orders can never take an item below zero on either database. Items are touched in id
order, so two transactions reserving the same items cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import utcnow
from persistence.tables import ItemAvailability


@dataclass(frozen=True)
class Level:
    """An item's availability in a branch after a change."""

    item_id: int
    available: bool
    stock: int | None


@dataclass(frozen=True)
class Shortage:
    """An item that could not be reserved: how many were asked for and how many are left (0 when 86'd)."""

    item_id: int
    requested: int
    left: int


@dataclass(frozen=True)
class Reservation:
    """The outcome of `reserve`: the counted items it took from, or the items it could not have."""

    changed: list[Level]
    short: list[Shortage]


async def reserve(session: AsyncSession, branch_id: int, quantities: Mapping[int, int]) -> Reservation:
    """Take `quantities` (item id -> qty) from the branch's stock; items not counted (null) are only checked for 86.

    When anything is short, the caller must roll back: the items that could be taken
    were taken in this transaction, so that every short item is named at once.
    """
    offer = ItemAvailability
    changed: list[Level] = []
    short: list[Shortage] = []
    for item_id in sorted(quantities):
        qty = quantities[item_id]
        taken = await session.execute(
            update(offer)
            .where(
                offer.branch_id == branch_id,
                offer.item_id == item_id,
                offer.available.is_(True),
                offer.stock.is_not(None),
                offer.stock >= qty,
            )
            .values(stock=offer.stock - qty, updated_at=utcnow())
            .returning(offer.stock),
            execution_options={"synchronize_session": False},
        )
        left = taken.scalar_one_or_none()
        if left is not None:
            changed.append(Level(item_id, True, left))
            continue
        # Not taken: unlimited and on (fine), or 86'd, short, or not offered at all.
        row = (
            await session.execute(
                select(offer.available, offer.stock).where(offer.branch_id == branch_id, offer.item_id == item_id)
            )
        ).one_or_none()
        if row is not None and row.available and row.stock is None:
            continue
        stock_left = 0 if row is None or not row.available else (row.stock or 0)
        short.append(Shortage(item_id, qty, stock_left))
    return Reservation(changed, short)


async def release(session: AsyncSession, branch_id: int, quantities: Mapping[int, int]) -> list[Level]:
    """Give `quantities` back to the items that are counted; items that became unlimited stay so."""
    offer = ItemAvailability
    changed: list[Level] = []
    for item_id in sorted(quantities):
        result = await session.execute(
            update(offer)
            .where(offer.branch_id == branch_id, offer.item_id == item_id, offer.stock.is_not(None))
            .values(stock=offer.stock + quantities[item_id], updated_at=utcnow())
            .returning(offer.available, offer.stock),
            execution_options={"synchronize_session": False},
        )
        row = result.one_or_none()
        if row is not None:
            changed.append(Level(item_id, row.available, row.stock))
    return changed
