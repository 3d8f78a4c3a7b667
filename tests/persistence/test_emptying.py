"""The suite's emptying of the database between tests (tests/conftest.py) leaves every table without a row, though
on PostgreSQL deleting catalogue rows fires triggers that write `catalogue_version` again."""

from __future__ import annotations

from sqlalchemy import func, select

from persistence.base import Base
from tests.conftest import empty_database
from tests.shop import Shop


async def test_emptying_leaves_no_row_in_any_table(shop: Shop) -> None:
    db = shop.services.db
    await shop.paid_order()
    await empty_database(db)
    async with db.session() as session:
        counts = {
            table.name: await session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }
    assert {name: count for name, count in counts.items() if count} == {}
