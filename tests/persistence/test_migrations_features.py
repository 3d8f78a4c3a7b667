"""Existing rows through the migrations of later features (0008 to 0012): dayparts, translations,
stations, combos and pairing codes, each raising the catalogue version where it changes the menu.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

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


async def test_at_0008_existing_items_have_no_daypart_and_a_dayparts_change_raises_the_catalogue_version(
    fresh_url: str,
) -> None:
    """Made at 0006: a category and its item are sold all day at 0008 (no daypart); a new daypart, and an item's move
    into it, raise the catalogue's version (the items' triggers still run); back at 0006 the rows stay."""
    await migrate.upgrade(fresh_url, "0006")
    items = sa.table("items_live", *(sa.column(name) for name in ("id", "category_id", "name", "price", "position")))
    categories = sa.table("categories", sa.column("id"), sa.column("name"), sa.column("position"))
    version = sa.table("catalogue_version", sa.column("version"))
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(categories.insert().values(id=1, name="Mains", position=0))
            await connection.execute(items.insert().values(id=1, category_id=1, name="Burger", price=900, position=0))
        await migrate.upgrade(fresh_url, "0008")
        async with engine.begin() as connection:
            windows = sa.text("SELECT daypart_id FROM categories UNION ALL SELECT daypart_id FROM items_live")
            assert (await connection.execute(windows)).scalars().all() == [None, None]
            before = (await connection.execute(sa.select(version.c.version))).scalar_one()
            await connection.execute(
                sa.text("INSERT INTO dayparts (id, name, starts_at, ends_at) VALUES (1, 'Breakfast', '06:00', '11:00')")
            )
            assert (await connection.execute(sa.select(version.c.version))).scalar_one() == before + 1
            await connection.execute(sa.text("UPDATE items_live SET daypart_id = 1"))
            assert (await connection.execute(sa.select(version.c.version))).scalar_one() == before + 2
        await migrate.downgrade(fresh_url, "0006")
        async with engine.connect() as connection:
            assert "dayparts" not in await connection.run_sync(table_names)
            assert (await connection.execute(sa.select(items.c.name))).scalars().all() == ["Burger"]
    finally:
        await engine.dispose()


async def test_at_0009_existing_rows_are_english_only_and_a_translation_raises_the_catalogue_version(
    fresh_url: str,
) -> None:
    """Made at 0008: the branch offers only en (default and kitchen), the catalogue's rows have no translations, the
    cart and order no locale and the order line no names of the customer's; a translation raises the catalogue's
    version (the columns were added in place, the triggers kept); back at 0008 the rows stay."""
    await migrate.upgrade(fresh_url, "0008")
    version = sa.table("catalogue_version", sa.column("version"))
    made_at_0008 = (
        *A_KIOSK,
        *A_BURGER,
        *ITS_EXTRAS,
        *AN_OPEN_CART,
        *A_PAID_ORDER,
    )
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as connection:
            for statement in made_at_0008:
                await connection.execute(sa.text(statement))
        await migrate.upgrade(fresh_url, "0009")
        async with engine.begin() as connection:
            branch = (
                await connection.execute(sa.text("SELECT default_locale, locales, kitchen_locale FROM branches"))
            ).one()
            assert (branch[0], json_value(branch[1]), branch[2]) == ("en", ["en"], "en")
            for table in ("categories", "items_live", "option_groups", "option_choices"):
                texts = (await connection.execute(sa.text(f"SELECT translations FROM {table}"))).scalar_one()
                assert json_value(texts) == {}, table
            for table in ("carts", "orders"):
                assert (await connection.execute(sa.text(f"SELECT locale FROM {table}"))).scalars().all() == [None]
            line = (await connection.execute(sa.text("SELECT display_name, display_options FROM order_lines"))).one()
            assert tuple(line) == (None, None)
            for table in ("categories", "items_live", "option_groups", "option_choices"):
                before = (await connection.execute(sa.select(version.c.version))).scalar_one()
                await connection.execute(sa.text(f"""UPDATE {table} SET translations = '{{"de": {{"name": "x"}}}}'"""))
                assert (await connection.execute(sa.select(version.c.version))).scalar_one() == before + 1, table
        await migrate.downgrade(fresh_url, "0008")
        async with engine.connect() as connection:
            for table, name in (("items_live", "Burger"), ("option_choices", "Cheese"), ("order_lines", "Burger")):
                assert (await connection.execute(sa.text(f"SELECT name FROM {table}"))).scalars().all() == [name]
            columns = await connection.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("branches")})
            assert "locales" not in columns
            version_now = (await connection.execute(sa.select(version.c.version))).scalar_one()
        async with engine.begin() as connection:
            await connection.execute(sa.text("UPDATE items_live SET name = 'Cheeseburger'"))
            assert (await connection.execute(sa.select(version.c.version))).scalar_one() == version_now + 1
    finally:
        await engine.dispose()


async def test_at_0010_existing_rows_have_no_station_and_a_stations_change_raises_the_catalogue_version(
    fresh_url: str,
) -> None:
    """Made at 0008: a category, its item, a kitchen display and an order line have no station at 0010 (the branch
    works as before); a new station raises the catalogue's version, a bump of it is kept, and deleting the order
    takes its bumps; back at 0008 the rows stay and the stations are gone."""
    await migrate.upgrade(fresh_url, "0008")
    engine = create_engine(fresh_url)
    statements = [
        "INSERT INTO branches (id, name, currency, timezone, tax_rate_bp, service_modes, tax_rates, is_active) "
        "VALUES (1, 'Main', 'EUR', 'Europe/Berlin', 0, '[\"eat_in\"]', '[]', true)",
        "INSERT INTO categories (id, name, position) VALUES (1, 'Mains', 0)",
        "INSERT INTO items_live (id, category_id, name, price, position, allergens) "
        "VALUES (1, 1, 'Burger', 900, 0, '[]')",
        "INSERT INTO devices (id, branch_id, kind, name, secret_hash, secret_version, is_active, info) "
        "VALUES (1, 1, 'kitchen_display', 'grill', 'x', 1, true, '{}')",
        "INSERT INTO orders (id, branch_id, number, business_date, status, currency, service_mode, subtotal, tax, "
        "total, taxes, version) VALUES (1, 1, 1, '2026-12-07', 'paid', 'EUR', 'eat_in', 900, 0, 900, '[]', 1)",
        "INSERT INTO order_lines (id, order_id, item_id, name, qty, unit_price, options, line_total) "
        "VALUES (1, 1, 1, 'Burger', 1, 900, '[]', 900)",
    ]
    version = sa.table("catalogue_version", sa.column("version"))
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(sa.text(statement))
        await migrate.upgrade(fresh_url, "0010")
        async with engine.begin() as connection:
            routes = sa.text(
                "SELECT station FROM categories UNION ALL SELECT station FROM items_live "
                "UNION ALL SELECT station FROM order_lines "
                "UNION ALL SELECT CAST(station_id AS VARCHAR) FROM devices"
            )
            assert (await connection.execute(routes)).scalars().all() == [None, None, None, None]
            before = (await connection.execute(sa.select(version.c.version))).scalar_one()
            await connection.execute(
                sa.text(
                    "INSERT INTO stations (id, branch_id, code, name, is_expo, position) "
                    "VALUES (1, 1, 'grill', 'Grill', false, 0)"
                )
            )
            assert (await connection.execute(sa.select(version.c.version))).scalar_one() == before + 1
            await connection.execute(sa.text("UPDATE items_live SET station = 'grill'"))
            assert (await connection.execute(sa.select(version.c.version))).scalar_one() == before + 2
            await connection.execute(sa.text("UPDATE devices SET station_id = 1"))
            await connection.execute(
                sa.text("INSERT INTO order_stations (order_id, station_id, bumped_at) VALUES (1, 1, '2026-12-07')")
            )
        async with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                await connection.execute(sa.text("PRAGMA foreign_keys = ON"))
            with pytest.raises(sa.exc.IntegrityError):
                async with connection.begin_nested():
                    await connection.execute(
                        sa.text(
                            "INSERT INTO stations (branch_id, code, name, is_expo, position) "
                            "VALUES (1, 'grill', 'Another grill', false, 1)"
                        )
                    )
            await connection.execute(sa.text("DELETE FROM order_lines"))
            await connection.execute(sa.text("DELETE FROM orders"))
            bumps = await connection.execute(sa.text("SELECT count(*) FROM order_stations"))
            assert bumps.scalar_one() == 0
        async with engine.begin() as connection:
            await connection.execute(sa.text("UPDATE devices SET station_id = NULL"))
        await migrate.downgrade(fresh_url, "0008")
        async with engine.connect() as connection:
            tables = await connection.run_sync(table_names)
            assert "stations" not in tables and "order_stations" not in tables
            names = sa.text("SELECT name FROM items_live UNION ALL SELECT name FROM devices")
            assert (await connection.execute(names)).scalars().all() == ["Burger", "grill"]
    finally:
        await engine.dispose()


async def test_at_0011_existing_lines_are_no_combos_and_slot_changes_raise_the_catalogue_version(
    fresh_url: str,
) -> None:
    """Made at 0008: a cart line and an order line have no components at 0011; a new slot, a choice of it and a
    changed upcharge each raise the catalogue's version; a negative upcharge is refused; back at 0008 the rows stay
    and the combo tables are gone."""
    await migrate.upgrade(fresh_url, "0008")
    version = sa.table("catalogue_version", sa.column("version"))
    made_at_0008 = (
        *A_KIOSK,
        *A_BURGER,
        "INSERT INTO items_live (id, category_id, name, price, position) VALUES (2, 1, 'Menu', 1200, 1)",
        *AN_OPEN_CART,
        "INSERT INTO cart_lines (id, cart_id, item_id, qty, choice_ids) VALUES (1, 1, 1, 2, '[]')",
        *A_PAID_ORDER,
    )
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as connection:
            for statement in made_at_0008:
                await connection.execute(sa.text(statement))
        await migrate.upgrade(fresh_url, "0011")
        async with engine.begin() as connection:
            for table in ("cart_lines", "order_lines"):
                read = sa.text(f"SELECT components FROM {table}")
                assert [json_value(value) for value in (await connection.execute(read)).scalars()] == [[]], table
            changes = (
                "INSERT INTO combo_slots (id, item_id, name, position) VALUES (1, 2, 'Main', 0)",
                "INSERT INTO combo_slot_choices (id, slot_id, item_id, upcharge, is_default, position)"
                " VALUES (1, 1, 1, 0, true, 0)",
                "UPDATE combo_slot_choices SET upcharge = 50",
            )
            for change in changes:
                before = (await connection.execute(sa.select(version.c.version))).scalar_one()
                await connection.execute(sa.text(change))
                assert (await connection.execute(sa.select(version.c.version))).scalar_one() == before + 1, change
        with pytest.raises(sa.exc.IntegrityError, match="upcharge_not_negative"):
            async with engine.begin() as connection:
                await connection.execute(sa.text("UPDATE combo_slot_choices SET upcharge = -1"))
        await migrate.downgrade(fresh_url, "0008")
        async with engine.connect() as connection:
            assert not {"combo_slots", "combo_slot_choices"} & await connection.run_sync(table_names)
            assert (await connection.execute(sa.text("SELECT qty FROM cart_lines"))).scalars().all() == [2]
            assert (await connection.execute(sa.text("SELECT name FROM order_lines"))).scalars().all() == ["Burger"]
    finally:
        await engine.dispose()


async def test_at_0012_pairing_codes_are_unique_go_with_their_device_and_leave_devices_alone_down_again(
    fresh_url: str,
) -> None:
    """At 0012 a pairing code is unique and is deleted with its device; back at 0011 the table goes, devices stay."""
    await migrate.upgrade(fresh_url, "0012")
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as connection:
            for statement in (
                "INSERT INTO branches (id, name, currency, timezone, tax_rate_bp, is_active)"
                " VALUES (1, 'Mitte', 'EUR', 'UTC', 1900, true)",
                "INSERT INTO devices (id, branch_id, kind, name, secret_hash, secret_version, is_active, info)"
                " VALUES (1, 1, 'kiosk', 'k', 'x', 1, true, '{}'), (2, 1, 'kiosk', 'k2', 'x', 1, true, '{}')",
                "INSERT INTO pairing_codes (id, code, poll_token_hash, device_id, expires_at)"
                " VALUES (1, '123456', 'a', 1, '2026-12-07 10:00:00+00'), (2, NULL, 'b', 2, '2026-12-07 10:00:00+00'),"
                " (3, NULL, 'c', NULL, '2026-12-07 10:00:00+00')",
            ):
                await connection.execute(sa.text(statement))
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(
                    sa.text(
                        "INSERT INTO pairing_codes (code, poll_token_hash, expires_at)"
                        " VALUES ('123456', 'd', '2026-12-07 10:00:00+00')"
                    )
                )
        async with engine.begin() as connection:
            await connection.execute(sa.text("DELETE FROM devices WHERE id = 1"))
            ids = (await connection.execute(sa.text("SELECT id FROM pairing_codes ORDER BY id"))).scalars().all()
            assert ids == [2, 3]
        await migrate.downgrade(fresh_url, "0011")
        async with engine.connect() as connection:
            assert "pairing_codes" not in await connection.run_sync(table_names)
            assert (await connection.execute(sa.text("SELECT id FROM devices"))).scalars().all() == [2]
    finally:
        await engine.dispose()
