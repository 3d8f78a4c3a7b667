"""The floor benchmark does the work it claims: per order, ten transactions each logged with one event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from itertools import count

import pytest
from sqlalchemy import func, select

from bench.floor import COMMANDS, Way, asyncpg_way, orders_per_s, prepared_way
from bench.processes import asyncpg_url
from persistence.database import Database
from persistence.enums import OrderStatus
from persistence.tables import CommandLogEntry, Order, OutboxEvent
from tests.rows import add_branch


@pytest.mark.parametrize("backend", ["postgresql"])  # the benchmark runs on PostgreSQL only
@pytest.mark.parametrize("way", [asyncpg_way, prepared_way], ids=["asyncpg", "prepared"])
async def test_every_floor_order_is_ten_transactions_that_leave_a_completed_order(
    db: Database, way: Callable[[str, int, Iterator[int]], Awaitable[Way]]
) -> None:
    """Each order inserts two rows, ends with one completed, and writes a command-log row and an outbox row per
    command; the figures come from whole orders only."""
    branch_id = await add_branch(db)
    url = db.engine.url.render_as_string(hide_password=False)
    if way is asyncpg_way:
        url = asyncpg_url(url)
    command, close = await way(url, branch_id, count(1))
    try:
        await orders_per_s(command, 0.2)
    finally:
        await close()

    async with db.session() as session:
        by_status = dict((await session.execute(select(Order.status, func.count()).group_by(Order.status))).all())
        logged = await session.scalar(select(func.count()).select_from(CommandLogEntry))
        events = await session.scalar(select(func.count()).select_from(OutboxEvent))
    orders = by_status.pop(OrderStatus.COMPLETED)
    # The cart stand-ins stay awaiting payment: one per order; nothing is left half way.
    assert by_status == {OrderStatus.AWAITING_PAYMENT: orders}
    assert logged == events == len(COMMANDS) * orders
