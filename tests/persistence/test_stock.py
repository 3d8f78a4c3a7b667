"""Reserving and giving back stock (`persistence.stock`), on SQLite and PostgreSQL.

Unlimited items are only checked, counted ones are taken with a conditional UPDATE, and
every short item is named with what is left; on PostgreSQL, concurrent orders never
take more than there is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.database import Database
from persistence.stock import Level, Reservation, Shortage, release, reserve
from persistence.tables import ItemAvailability
from tests.locks import lock_waiters, until_blocked_or_done
from tests.rows import add_branch, add_item, stock_of

# Rows are created with this `updated_at`, so that a change shows without comparing clocks.
LONG_AGO = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
# Bounds every wait on other transactions, so that a hang fails the test instead of stalling the suite.
TIMEOUT_S = 30

T = TypeVar("T")


class Short(Exception):
    """Raised inside a session when a reservation is short, to roll it back as `order.place` does."""


@dataclass(frozen=True)
class Row:
    """An item's stored availability row."""

    available: bool
    stock: int | None
    updated_at: datetime


async def _item(
    db: Database, branch_id: int, *, stock: int | None, available: bool = True, offered: bool = True
) -> int:
    """A new item, its availability row (if `offered`) written LONG_AGO."""
    return await add_item(db, branch_id, stock=stock, available=available, offered=offered, updated_at=LONG_AGO)


async def _row(db: Database, branch_id: int, item_id: int) -> Row | None:
    offer = ItemAvailability
    async with db.session() as session:
        found = (
            await session.execute(
                select(offer.available, offer.stock, offer.updated_at).where(
                    offer.branch_id == branch_id, offer.item_id == item_id
                )
            )
        ).one_or_none()
    return None if found is None else Row(found.available, found.stock, found.updated_at)


async def _reserve(db: Database, branch_id: int, quantities: dict[int, int]) -> Reservation:
    """Reserve in a transaction of its own, committed."""
    async with db.session() as session:
        return await reserve(session, branch_id, quantities)


# Reserving, one transaction at a time


async def test_an_unlimited_item_is_reserved_without_any_change(db: Database) -> None:
    """An item that is on and not counted is reserved: nothing changed, nothing short, its row untouched."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=None)

    assert await _reserve(db, branch_id, {item_id: 3}) == Reservation(changed=[], short=[])

    assert await _row(db, branch_id, item_id) == Row(available=True, stock=None, updated_at=LONG_AGO)


async def test_a_counted_item_with_enough_left_is_taken(db: Database) -> None:
    """Enough left: the quantity is taken from the stored stock and the new level is reported as changed."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=5)

    assert await _reserve(db, branch_id, {item_id: 2}) == Reservation(changed=[Level(item_id, True, 3)], short=[])

    row = await _row(db, branch_id, item_id)
    assert row is not None
    assert row.stock == 3
    assert row.updated_at > LONG_AGO


async def test_taking_the_last_ones_leaves_zero(db: Database) -> None:
    """Exactly what is left can be taken, down to zero; the next unit is then short with nothing left."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=2)

    assert await _reserve(db, branch_id, {item_id: 2}) == Reservation(changed=[Level(item_id, True, 0)], short=[])
    assert await _reserve(db, branch_id, {item_id: 1}) == Reservation(changed=[], short=[Shortage(item_id, 1, 0)])
    assert await stock_of(db, branch_id, item_id) == 0


async def test_a_counted_item_with_too_few_left_is_short_by_what_is_left(db: Database) -> None:
    """Fewer left than asked for: short, naming how many are left, and the stock is not touched."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=2)

    reservation = await _reserve(db, branch_id, {item_id: 3})

    assert reservation == Reservation(changed=[], short=[Shortage(item_id, requested=3, left=2)])
    assert await _row(db, branch_id, item_id) == Row(available=True, stock=2, updated_at=LONG_AGO)


@pytest.mark.parametrize("stock", [None, 4], ids=["unlimited", "counted"])
async def test_an_86d_item_is_short_with_nothing_left(db: Database, stock: int | None) -> None:
    """An item that is off (86'd) is short with 0 left, whether or not it counts stock, and its stock is kept."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=stock, available=False)

    reservation = await _reserve(db, branch_id, {item_id: 1})

    assert reservation == Reservation(changed=[], short=[Shortage(item_id, requested=1, left=0)])
    assert await _row(db, branch_id, item_id) == Row(available=False, stock=stock, updated_at=LONG_AGO)


async def test_an_item_the_branch_does_not_offer_is_short_with_nothing_left(db: Database) -> None:
    """An item without an availability row in this branch is short with 0 left, even when another branch has it."""
    branch_id = await add_branch(db)
    other_branch_id = await add_branch(db, "Beta")
    item_id = await _item(db, other_branch_id, stock=10)

    reservation = await _reserve(db, branch_id, {item_id: 1})

    assert reservation == Reservation(changed=[], short=[Shortage(item_id, requested=1, left=0)])
    assert await _row(db, branch_id, item_id) is None
    assert await stock_of(db, other_branch_id, item_id) == 10


async def test_a_mixed_order_names_every_short_item_and_its_rollback_keeps_all_stock(db: Database) -> None:
    """One call takes what it can and names every short item at once; the caller's rollback restores all stock."""
    branch_id = await add_branch(db)
    unlimited = await _item(db, branch_id, stock=None)
    enough = await _item(db, branch_id, stock=5)
    too_few = await _item(db, branch_id, stock=1)
    off = await _item(db, branch_id, stock=3, available=False)
    not_offered = await _item(db, branch_id, stock=None, offered=False)
    # Given in no particular order: shortages come back in item id order.
    quantities = {not_offered: 1, too_few: 2, enough: 2, unlimited: 4, off: 1}

    with pytest.raises(Short):
        async with db.session() as session:
            reservation = await reserve(session, branch_id, quantities)
            if reservation.short:
                raise Short

    assert reservation == Reservation(
        changed=[Level(enough, True, 3)],
        short=[Shortage(too_few, 2, 1), Shortage(off, 1, 0), Shortage(not_offered, 1, 0)],
    )
    assert await _row(db, branch_id, unlimited) == Row(True, None, LONG_AGO)
    assert await _row(db, branch_id, enough) == Row(True, 5, LONG_AGO)
    assert await _row(db, branch_id, too_few) == Row(True, 1, LONG_AGO)
    assert await _row(db, branch_id, off) == Row(False, 3, LONG_AGO)


async def test_levels_read_before_stand_in_for_the_first_read_but_the_update_still_decides(db: Database) -> None:
    """Levels pricing read (here stale: 5 left where 1 is) save the first read; the conditional UPDATE still refuses
    what is not there, and the shortage names what is."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=1)
    async with db.session() as session:
        reservation = await reserve(session, branch_id, {item_id: 2}, {item_id: Level(item_id, True, 5)})
    assert reservation == Reservation(changed=[], short=[Shortage(item_id, requested=2, left=1)])
    assert await stock_of(db, branch_id, item_id) == 1


# Giving back


async def test_release_gives_back_to_counted_items_only(db: Database) -> None:
    """Counted items (on or 86'd) get the quantity back and are reported; unlimited and unoffered ones stay as is."""
    branch_id = await add_branch(db)
    counted = await _item(db, branch_id, stock=2)
    off = await _item(db, branch_id, stock=0, available=False)
    unlimited = await _item(db, branch_id, stock=None)
    not_offered = await _item(db, branch_id, stock=None, offered=False)

    async with db.session() as session:
        levels = await release(session, branch_id, {unlimited: 2, not_offered: 1, off: 1, counted: 3})

    assert levels == [Level(counted, True, 5), Level(off, False, 1)]
    assert await stock_of(db, branch_id, counted) == 5
    assert await stock_of(db, branch_id, off) == 1
    assert await _row(db, branch_id, unlimited) == Row(True, None, LONG_AGO)
    assert await _row(db, branch_id, not_offered) is None


# Concurrent reservations (PostgreSQL: SQLite runs the process's transactions one at a time)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_concurrent_reservations_never_oversell(db: Database) -> None:
    """Twelve orders of one unit race for a stock of 5: exactly 5 get one, each a different level, and 0 are left."""
    orders = 12
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=5)
    start = asyncio.Barrier(orders)
    outcomes: list[Reservation] = []

    async def place() -> bool:
        try:
            async with db.session() as session:
                await session.execute(text("SELECT 1"))  # every transaction is open before any of them reserves
                await start.wait()
                reservation = await reserve(session, branch_id, {item_id: 1})
                outcomes.append(reservation)
                if reservation.short:
                    raise Short
                await asyncio.sleep(0.05)  # hold the row lock while the others queue behind it
        except Short:
            return False
        return True

    most_waiting = 0
    finished = asyncio.Event()

    async def watch() -> None:
        nonlocal most_waiting
        while not finished.is_set():
            most_waiting = max(most_waiting, await lock_waiters(db))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        placed = await asyncio.wait_for(asyncio.gather(*(place() for _ in range(orders))), TIMEOUT_S)
    finally:
        finished.set()
        await watcher

    assert most_waiting > 0  # the reservations really queued on the row lock
    assert placed.count(True) == 5
    taken = sorted(level.stock for outcome in outcomes for level in outcome.changed if level.stock is not None)
    assert taken == [0, 1, 2, 3, 4]
    shortages = [shortage for outcome in outcomes for shortage in outcome.short]
    assert shortages == [Shortage(item_id, requested=1, left=0)] * (orders - 5)
    assert await stock_of(db, branch_id, item_id) == 0


async def _reserve_behind(
    db: Database, branch_id: int, item_id: int, hold: Callable[[AsyncSession], Awaitable[T]], qty: int = 1
) -> tuple[T, Reservation]:
    """Reserve `qty` of the item while another transaction, having run `hold`, keeps it locked; then let that one
    commit. Returns what `hold` gave and the reservation."""
    held, let_commit = asyncio.Event(), asyncio.Event()

    async def holder() -> T:
        async with db.session() as session:
            result = await hold(session)
            held.set()
            await let_commit.wait()
            return result

    holding = asyncio.create_task(holder())
    try:
        await asyncio.wait_for(held.wait(), TIMEOUT_S)
        waiting = asyncio.create_task(_reserve(db, branch_id, {item_id: qty}))
        await until_blocked_or_done(db, waiting, TIMEOUT_S)
    finally:
        let_commit.set()  # never leave the row locked, or the next test's cleanup waits for ever
    return await asyncio.wait_for(holding, TIMEOUT_S), await asyncio.wait_for(waiting, TIMEOUT_S)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_reservation_that_waited_for_another_reports_what_that_one_left(db: Database) -> None:
    """Read 1 left, then waited for an order that took it: short with 0 left (read again), not with the stale 1."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=1)

    async def take_it(session: AsyncSession) -> Reservation:
        return await reserve(session, branch_id, {item_id: 1})

    first, second = await _reserve_behind(db, branch_id, item_id, take_it)
    assert first == Reservation(changed=[Level(item_id, True, 0)], short=[])
    assert second == Reservation(changed=[], short=[Shortage(item_id, 1, 0)])
    assert await stock_of(db, branch_id, item_id) == 0


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_an_item_made_unlimited_while_a_reservation_waited_is_reserved_without_change(db: Database) -> None:
    """Read as counted, then made unlimited by the transaction it waited for: reserved, nothing changed or short."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=1)

    async def make_unlimited(session: AsyncSession) -> None:
        offer = ItemAvailability
        await session.execute(
            update(offer).where(offer.branch_id == branch_id, offer.item_id == item_id).values(stock=None)
        )

    _, waited = await _reserve_behind(db, branch_id, item_id, make_unlimited)
    assert waited == Reservation(changed=[], short=[])
    assert await stock_of(db, branch_id, item_id) is None


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_stock_being_given_back_while_a_reservation_falls_short_is_waited_for_and_taken(db: Database) -> None:
    """1 left and 2 wanted while a cancel gives 2 back, not yet committed: the reservation waits for it and takes 2,
    instead of refusing the order with 1 left."""
    branch_id = await add_branch(db)
    item_id = await _item(db, branch_id, stock=1)

    async def give_back(session: AsyncSession) -> list[Level]:
        return await release(session, branch_id, {item_id: 2})

    given, waited = await _reserve_behind(db, branch_id, item_id, give_back, qty=2)
    assert given == [Level(item_id, True, 3)]
    assert waited == Reservation(changed=[Level(item_id, True, 1)], short=[])
    assert await stock_of(db, branch_id, item_id) == 1
