"""Rows written before the catalogue was versioned keep their data through the migrations that version
it (0004 to 0007): row versions start at 1, the catalogue version's triggers, service modes and allergens.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from persistence import migrate
from persistence.database import create_engine
from tests.persistence.migration_helpers import (
    A_BURGER,
    A_KIOSK,
    A_PAID_ORDER,
    AN_OPEN_CART,
    ITS_EXTRAS,
    json_value,
    table_names,
)


async def test_rows_written_before_versions_start_at_version_1_and_keep_their_data_down_again(fresh_url: str) -> None:
    """Made at 0003: a cart gets version 1 at 0004, and keeps its row without it back at 0003."""
    await migrate.upgrade(fresh_url, "0003")
    branches = sa.table(
        "branches",
        *(sa.column(name) for name in ("id", "name", "currency", "timezone", "tax_rate_bp", "is_active")),
    )
    devices = sa.table(
        "devices",
        *(sa.column(name) for name in ("id", "branch_id", "kind", "name", "secret_hash", "secret_version")),
        sa.column("is_active"),
        sa.column("info", sa.JSON),
    )
    carts = sa.table("carts", *(sa.column(name) for name in ("id", "branch_id", "device_id", "status", "version")))
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                branches.insert().values(
                    id=1, name="Mitte", currency="EUR", timezone="UTC", tax_rate_bp=0, is_active=True
                )
            )
            await connection.execute(
                devices.insert().values(
                    id=1,
                    branch_id=1,
                    kind="kiosk",
                    name="k",
                    secret_hash="x",
                    secret_version=1,
                    is_active=True,
                    info={},
                )
            )
            await connection.execute(carts.insert().values(id=1, branch_id=1, device_id=1, status="open"))
        await migrate.upgrade(fresh_url)
        async with engine.connect() as connection:
            assert (await connection.execute(sa.select(carts.c.id, carts.c.version))).all() == [(1, 1)]
        await migrate.downgrade(fresh_url, "0003")
        async with engine.connect() as connection:
            assert (await connection.execute(sa.select(carts.c.id, carts.c.status))).all() == [(1, "open")]
            assert "version" not in {column["name"] for column in await connection.run_sync(_cart_columns)}
    finally:
        await engine.dispose()


def _cart_columns(connection: Connection) -> list[Any]:
    return list(inspect(connection).get_columns("carts"))


async def test_the_catalogue_version_is_raised_by_triggers_at_0005_and_gone_with_them_at_0004(fresh_url: str) -> None:
    """At 0005 a new category raises the catalogue's version from no row to 1 and then 2; back at 0004 the table and
    its triggers are gone, and a category is still written."""
    categories = sa.table("categories", sa.column("name"), sa.column("position"))
    version = sa.table("catalogue_version", sa.column("version"))
    engine = create_engine(fresh_url)
    try:
        await migrate.upgrade(fresh_url, "0005")
        for expected in (1, 2):
            async with engine.begin() as connection:
                await connection.execute(categories.insert().values(name=f"c{expected}", position=0))
            async with engine.connect() as connection:
                assert (await connection.execute(sa.select(version.c.version))).scalars().all() == [expected]
        await migrate.downgrade(fresh_url, "0004")
        async with engine.begin() as connection:
            await connection.execute(categories.insert().values(name="after", position=0))
            assert "catalogue_version" not in await connection.run_sync(table_names)
    finally:
        await engine.dispose()


async def test_at_0006_existing_rows_are_eat_in_and_the_catalogue_triggers_still_run(fresh_url: str) -> None:
    """Made at 0005: a branch offers both modes with no rates of its own and its cart is eat-in at 0006; an item's
    change still raises the catalogue's version (the columns were added in place, not by copying the tables); back
    at 0005 the rows stay."""
    await migrate.upgrade(fresh_url, "0005")
    branches = sa.table("branches", *(sa.column(name) for name in ("id", "name", "currency", "timezone")))
    carts = sa.table("carts", *(sa.column(name) for name in ("id", "branch_id", "device_id", "status", "version")))
    items = sa.table("items_live", *(sa.column(name) for name in ("id", "category_id", "name", "price", "position")))
    categories = sa.table("categories", sa.column("id"), sa.column("name"), sa.column("position"))
    version = sa.table("catalogue_version", sa.column("version"))
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO branches (id, name, currency, timezone, tax_rate_bp, is_active)"
                    " VALUES (1, 'Mitte', 'EUR', 'UTC', 1900, true)"
                )
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO devices (id, branch_id, kind, name, secret_hash, secret_version, is_active, info)"
                    " VALUES (1, 1, 'kiosk', 'k', 'x', 1, true, '{}')"
                )
            )
            await connection.execute(carts.insert().values(id=1, branch_id=1, device_id=1, status="open", version=1))
            await connection.execute(categories.insert().values(id=1, name="Mains", position=0))
        await migrate.upgrade(fresh_url)
        async with engine.begin() as connection:
            cart_modes = sa.text("SELECT service_mode FROM carts")
            assert (await connection.execute(cart_modes)).scalars().all() == ["eat_in"]
            branch = sa.text("SELECT service_modes, tax_rates FROM branches")
            modes, rates = (await connection.execute(branch)).one()
            assert (json_value(modes), json_value(rates)) == (["eat_in", "takeaway"], [])
            before = (await connection.execute(sa.select(version.c.version))).scalar_one()
            await connection.execute(items.insert().values(id=1, category_id=1, name="Burger", price=900, position=0))
            assert (await connection.execute(sa.select(version.c.version))).scalar_one() == before + 1
        await migrate.downgrade(fresh_url, "0005")
        async with engine.connect() as connection:
            assert (await connection.execute(sa.select(carts.c.id, carts.c.status))).all() == [(1, "open")]
            assert (await connection.execute(sa.select(branches.c.name))).scalars().all() == ["Mitte"]
            assert (await connection.execute(sa.select(items.c.name))).scalars().all() == ["Burger"]
    finally:
        await engine.dispose()


async def test_at_0007_existing_rows_have_no_allergens_calories_or_notes_and_the_catalogue_triggers_still_run(
    fresh_url: str,
) -> None:
    """Made at 0006: an item, its choice, a cart line and an order line have no allergens, unknown calories and no
    note at 0007; an item's calories below 0 are refused, a choice's are not; changes to items and choices still
    raise the catalogue's version (the columns were added in place); back at 0006 the rows stay."""
    await migrate.upgrade(fresh_url, "0006")
    version = sa.table("catalogue_version", sa.column("version"))
    made_at_0006 = (
        *A_KIOSK,
        *A_BURGER,
        *ITS_EXTRAS,
        *AN_OPEN_CART,
        "INSERT INTO cart_lines (id, cart_id, item_id, qty, choice_ids) VALUES (1, 1, 1, 2, '[1]')",
        *A_PAID_ORDER,
    )
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as connection:
            for statement in made_at_0006:
                await connection.execute(sa.text(statement))
        await migrate.upgrade(fresh_url)
        async with engine.begin() as connection:
            for table in ("items_live", "option_choices"):
                read = sa.text(f"SELECT allergens, calories FROM {table}")
                allergens, calories = (await connection.execute(read)).one()
                assert (json_value(allergens), calories) == ([], None), table
            for table in ("cart_lines", "order_lines"):
                assert (await connection.execute(sa.text(f"SELECT note FROM {table}"))).scalars().all() == [None], table
            for change in ("UPDATE items_live SET calories = 550", "UPDATE option_choices SET calories = -20"):
                before = (await connection.execute(sa.select(version.c.version))).scalar_one()
                await connection.execute(sa.text(change))
                assert (await connection.execute(sa.select(version.c.version))).scalar_one() == before + 1, change
        with pytest.raises(sa.exc.IntegrityError, match="calories_not_negative"):
            async with engine.begin() as connection:
                await connection.execute(sa.text("UPDATE items_live SET calories = -1"))
        await migrate.downgrade(fresh_url, "0006")
        async with engine.connect() as connection:
            for table, name in (("items_live", "Burger"), ("option_choices", "Cheese"), ("order_lines", "Burger")):
                assert (await connection.execute(sa.text(f"SELECT name FROM {table}"))).scalars().all() == [name]
            assert (await connection.execute(sa.text("SELECT qty FROM cart_lines"))).scalars().all() == [2]
    finally:
        await engine.dispose()
