"""The daypart worker: at a window's boundary each branch hears `menu.item_updated` for every item whose orderability
switched, once, however many instances run it; driven by moments the test picks, never by sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update

from channels import names
from persistence.tables import Category, Daypart, Item, ItemAvailability, OutboxEvent
from server.workers.dayparts import DaypartWorker, event_id
from tests.shop import Shop
from tests.world import World

# Branch a is in Berlin (UTC+1 in December): breakfast 06:00-11:00 there is 05:00-10:00 UTC.
BREAKFAST_OPENS = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
BREAKFAST_ENDS = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
LIMIT_S = 10.0


async def _breakfast_mains(shop: Shop) -> None:
    """Breakfast 06:00-11:00 on the category of the burger and the fries (not the cola's)."""
    async with shop.services.db.session() as session:
        daypart = Daypart(name="Breakfast", starts_at=time(6), ends_at=time(11))
        session.add(daypart)
        await session.flush()
        burger = await session.get(Item, shop.burger)
        assert burger is not None
        await session.execute(update(Category).where(Category.id == burger.category_id).values(daypart_id=daypart.id))


async def _events(shop: Shop) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Every outbox event: its id, channel, name and data."""
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [(row.event_id, row.channel, row.event, row.data) for row in rows]


def _worker(shop: Shop) -> DaypartWorker:
    return DaypartWorker(shop.services.db, shop.services.relay)


async def test_the_end_of_breakfast_announces_each_switched_item_once_across_instances(shop: Shop) -> None:
    """Started at 09:00 Berlin time, the next boundary is 11:00 (10:00 UTC); catching up past it emits the burger and
    the fries, no longer orderable, with ids of the branch, boundary and item; a second instance catching up to the
    same moment adds nothing, and a moment before the boundary announces nothing."""
    await _breakfast_mains(shop)
    first, second = _worker(shop), _worker(shop)
    started = BREAKFAST_ENDS - timedelta(hours=1)
    assert await first.catch_up(started) == await second.catch_up(started) == 0
    assert await first.next_boundary(started) == BREAKFAST_ENDS
    assert await first.catch_up(BREAKFAST_ENDS - timedelta(seconds=1)) == 0
    assert await _events(shop) == []

    assert await first.catch_up(BREAKFAST_ENDS + timedelta(seconds=30)) == 2
    assert await second.catch_up(BREAKFAST_ENDS + timedelta(seconds=30)) == 0
    announced = await _events(shop)
    channel = names.branch_menu(shop.branch_id)
    assert [(key, ch, event, data["id"], data["orderable"]) for key, ch, event, data in announced] == [
        (event_id(shop.branch_id, BREAKFAST_ENDS, item), channel, "menu.item_updated", item, False)
        for item in sorted((shop.burger, shop.fries))
    ]
    assert announced[0][3]["dayparts"] == [{"name": "Breakfast", "starts_at": "06:00", "ends_at": "11:00"}]


async def test_the_loop_wakes_at_the_opening_of_breakfast_by_its_clock(shop: Shop) -> None:
    """At 05:00 Berlin time the running loop sleeps until 06:00 by its own clock and announces the two mains as
    orderable; its sleeps are the test's, moving the clock instead of waiting."""
    await _breakfast_mains(shop)
    now = [BREAKFAST_OPENS - timedelta(hours=1)]
    passed, stop = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:
        if now[0] > BREAKFAST_OPENS:
            # The round that passed the boundary is done: wait to be closed.
            passed.set()
            await stop.wait()
        now[0] += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    worker = DaypartWorker(shop.services.db, shop.services.relay, clock=lambda: now[0], sleep=sleep)
    worker.start()
    try:
        await asyncio.wait_for(passed.wait(), LIMIT_S)
    finally:
        await worker.close()
    announced = await _events(shop)
    assert sorted((data["id"], data["orderable"]) for _, _, _, data in announced) == [
        (shop.burger, True),
        (shop.fries, True),
    ]
    assert {key for key, *_ in announced} == {
        event_id(shop.branch_id, BREAKFAST_OPENS, i) for i in (shop.burger, shop.fries)
    }


async def test_each_branch_hears_its_own_boundary_in_its_own_time_zone(shop: Shop, world: World) -> None:
    """Branch b, in New York, offers the burger too: Berlin's 11:00 (10:00 UTC) announces it to branch a only; New
    York's 06:00 and 11:00 (11:00 and 16:00 UTC) announce it orderable and then not to branch b only."""
    await _breakfast_mains(shop)
    async with shop.services.db.session() as session:
        session.add(ItemAvailability(branch_id=world.branch_b, item_id=shop.burger, available=True, stock=None))
    worker = _worker(shop)
    await worker.catch_up(BREAKFAST_ENDS - timedelta(hours=1))
    assert await worker.catch_up(BREAKFAST_ENDS) == 2
    assert {data["id"]: ch for _, ch, _, data in await _events(shop)} == {
        shop.burger: names.branch_menu(shop.branch_id),
        shop.fries: names.branch_menu(shop.branch_id),
    }
    new_york = [datetime(2026, 12, 7, hour, 0, tzinfo=UTC) for hour in (11, 16)]
    assert await worker.next_boundary(BREAKFAST_ENDS) == new_york[0]
    assert await worker.catch_up(new_york[1]) == 2
    assert [(key, channel, data["id"], data["orderable"]) for key, channel, _, data in (await _events(shop))[2:]] == [
        (event_id(world.branch_b, moment, shop.burger), names.branch_menu(world.branch_b), shop.burger, orderable)
        for moment, orderable in zip(new_york, (True, False), strict=True)
    ]
