"""Reserving and giving back stock: counts change only through conditional UPDATEs.

Never read-then-write a count: `stock >= qty` is checked by the UPDATE itself, so
concurrent orders can never take an item below zero on either database. Items are
touched in id order, so two transactions reserving the same items cannot deadlock.

One read first finds the items that are on and not counted (they need no change at all)
and those that are 86'd or not offered. It takes no lock: an item switched at that moment
counts as switched after the order, as it would had the order committed first. An item
the UPDATE could not take from is read again with its row locked, so that stock being
given back at that moment (a cancel committing) is waited for and taken, and what a
shortage reports as left holds until the transaction ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table, utcnow
from persistence.prepared import Prepared
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


# Built once (every order runs them; cancels give back): a statement object keeps its SQL cache key for the next call.
_AVAILABILITY = table(ItemAvailability)
_LEVELS = select(_AVAILABILITY.c.item_id, _AVAILABILITY.c.available, _AVAILABILITY.c.stock).where(
    _AVAILABILITY.c.branch_id == bindparam("branch_id"),
    _AVAILABILITY.c.item_id.in_(bindparam("item_ids", expanding=True)),
)
# One item's counted row; taking from it and giving back to it differ in their condition and sign.
_COUNTED = update(_AVAILABILITY).where(
    _AVAILABILITY.c.branch_id == bindparam("b_branch_id"),
    _AVAILABILITY.c.item_id == bindparam("b_item_id"),
    _AVAILABILITY.c.stock.is_not(None),
)
_TAKE = (
    _COUNTED.where(_AVAILABILITY.c.available.is_(True), _AVAILABILITY.c.stock >= bindparam("qty"))
    .values(stock=_AVAILABILITY.c.stock - bindparam("qty"), updated_at=bindparam("now"))
    .returning(_AVAILABILITY.c.stock)
)
# Reserving runs on the driver (persistence/prepared.py): it is on the path of every order.
_TAKE_PREPARED = Prepared(_TAKE)
_LOCKED_LEVEL = Prepared(
    select(_AVAILABILITY.c.item_id, _AVAILABILITY.c.available, _AVAILABILITY.c.stock)
    .where(_AVAILABILITY.c.branch_id == bindparam("branch_id"), _AVAILABILITY.c.item_id == bindparam("item_id"))
    .with_for_update()
)
_GIVE_BACK = _COUNTED.values(stock=_AVAILABILITY.c.stock + bindparam("qty"), updated_at=bindparam("now")).returning(
    _AVAILABILITY.c.available, _AVAILABILITY.c.stock
)


async def _levels(session: AsyncSession, branch_id: int, item_ids: Iterable[int]) -> dict[int, Level]:
    """Item id -> level, for the items among these that the branch offers (not locked)."""
    rows = await session.execute(_LEVELS, {"branch_id": branch_id, "item_ids": list(item_ids)})
    return {row.item_id: Level(row.item_id, row.available, row.stock) for row in rows}


async def levels_of(session: AsyncSession, branch_id: int, item_ids: Iterable[int]) -> dict[int, Level]:
    """Item id -> level, for the items among these that the branch offers, read without a lock (a combo's
    components, read next to its cart's lines)."""
    return await _levels(session, branch_id, item_ids)


async def _locked_level(session: AsyncSession, branch_id: int, item_id: int) -> Level | None:
    """The item's level with its row locked until the transaction ends; None when the branch does not offer it."""
    row = await _LOCKED_LEVEL.first(session, {"branch_id": branch_id, "item_id": item_id})
    return None if row is None else Level(row.item_id, row.available, row.stock)


async def _take(session: AsyncSession, branch_id: int, item_id: int, qty: int) -> Level | None:
    """Take `qty` of a counted item that is on; None when it is not (any more), or has fewer left."""
    params = {"b_branch_id": branch_id, "b_item_id": item_id, "qty": qty, "now": utcnow()}
    left = await _TAKE_PREPARED.scalar(session, params)
    return None if left is None else Level(item_id, True, left)


async def reserve(
    session: AsyncSession, branch_id: int, quantities: Mapping[int, int], levels: Mapping[int, Level] | None = None
) -> Reservation:
    """Take `quantities` (item id -> qty) from the branch's stock; items not counted (null) are only checked for 86.

    `levels`: the levels of the items the branch offers, when this transaction has just read them (pricing does),
    in place of the first read; like that read, they need no lock. When anything is short, the caller must roll
    back: the items that could be taken were taken in this transaction, so that every short item is named at once.
    """
    if levels is None:
        levels = await _levels(session, branch_id, quantities)
    changed: list[Level] = []
    short: list[Shortage] = []
    for item_id in sorted(quantities):
        qty = quantities[item_id]
        level = levels.get(item_id)
        if level is not None and level.available and level.stock is not None:
            taken = await _take(session, branch_id, item_id, qty)
            if taken is None:
                # Too few left, or the item changed since the read: read it again, locked (see the module's doc).
                level = await _locked_level(session, branch_id, item_id)
                if level is not None and level.available and level.stock is not None and level.stock >= qty:
                    taken = await _take(session, branch_id, item_id, qty)  # the row is ours now: this takes it
            if taken is not None:
                changed.append(taken)
                continue
        if level is not None and level.available and level.stock is None:
            continue  # on and not counted: nothing to take
        stock_left = 0 if level is None or not level.available else (level.stock or 0)
        short.append(Shortage(item_id, qty, stock_left))
    return Reservation(changed, short)


async def release(session: AsyncSession, branch_id: int, quantities: Mapping[int, int]) -> list[Level]:
    """Give `quantities` back to the items that are counted; items that became unlimited stay so."""
    changed: list[Level] = []
    for item_id in sorted(quantities):
        params = {"b_branch_id": branch_id, "b_item_id": item_id, "qty": quantities[item_id], "now": utcnow()}
        row = (await session.execute(_GIVE_BACK, params)).one_or_none()
        if row is not None:
            changed.append(Level(item_id, row.available, row.stock))
    return changed
