"""The migrations build exactly the schema the models describe, down and up again, on both databases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, inspect
from sqlalchemy.engine import Connection

import persistence.tables  # noqa: F401  (registers every table on Base.metadata)
from persistence import migrate
from persistence.base import Base
from persistence.database import create_engine
from tests.conftest import PG_TEST_DB, create_pg_database, drop_pg_database, pg_url

REPO = Path(__file__).resolve().parent.parent.parent
MIGRATION_FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})_[a-z0-9]+(?:_[a-z0-9]+)*\.py$")
MODEL_TABLES = set(Base.metadata.tables)


@pytest.fixture
async def fresh_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the backend that no other test touches."""
    if backend == "postgresql":
        # Named after this process's suite database, so that concurrent runs never share it.
        name = f"{PG_TEST_DB}_migrations"
        await create_pg_database(name)
        yield pg_url(name)
        await drop_pg_database(name)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"


def _schema_differences(connection: Connection) -> list[Any]:
    # Configured as migrations/env.py configures autogenerate, so "no difference" here
    # means `alembic revision --autogenerate` would write an empty migration.
    context = MigrationContext.configure(
        connection,
        opts={
            "target_metadata": Base.metadata,
            "compare_type": True,
            "render_as_batch": connection.dialect.name == "sqlite",
        },
    )
    return list(compare_metadata(context, Base.metadata))


def _check_constraints(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {
        table: {str(check["name"]) for check in inspector.get_check_constraints(table)}
        for table in inspector.get_table_names()
        if table in MODEL_TABLES
    }


def _model_check_constraints() -> dict[str, set[str]]:
    return {
        table.name: {
            str(constraint.name) for constraint in table.constraints if isinstance(constraint, CheckConstraint)
        }
        for table in Base.metadata.sorted_tables
    }


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _inspect(url: str, step: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(step)
    finally:
        await engine.dispose()


async def _assert_matches_models(url: str) -> None:
    assert await _inspect(url, _schema_differences) == []
    # Autogenerate does not compare CHECK constraints; they guard stock, money and enums.
    assert await _inspect(url, _check_constraints) == _model_check_constraints()


async def test_upgrade_builds_the_models_schema_and_downgrade_removes_it(fresh_url: str) -> None:
    """Head matches the models exactly, base leaves no model table, and head can be rebuilt after."""
    assert await migrate.current_revision(fresh_url) is None

    await migrate.upgrade(fresh_url)
    assert await migrate.current_revision(fresh_url) == migrate.head_revision()
    await _assert_matches_models(fresh_url)

    await migrate.downgrade(fresh_url)
    assert await migrate.current_revision(fresh_url) is None
    assert await _inspect(fresh_url, _tables) & MODEL_TABLES == set()

    await migrate.upgrade(fresh_url)
    assert await migrate.current_revision(fresh_url) == migrate.head_revision()
    await _assert_matches_models(fresh_url)


def test_migration_files_are_dated_and_form_one_linear_chain() -> None:
    """Every file is named YYYY-MM-DD_slug.py, and the revisions form one line from base to a single head."""
    files = sorted((migrate.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert files, "no migration found"
    for file in files:
        match = MIGRATION_FILE_NAME.match(file.name)
        assert match, f"{file.name} is not named YYYY-MM-DD_slug.py"
        date.fromisoformat(match.group(1))

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(scripts.get_heads()) == 1
    chain = list(scripts.walk_revisions())
    assert len(chain) == len(files)
    for newer, older in zip(chain, chain[1:], strict=False):
        assert newer.down_revision == older.revision
    assert chain[-1].down_revision is None


async def test_upgrade_grants_the_default_roles_what_later_features_need(fresh_url: str) -> None:
    """Made at 0001: staff gain `orders:write`, managers `payments:refund`; other roles keep theirs."""
    await migrate.upgrade(fresh_url, "0001")
    roles = sa.table(
        "roles",
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("permissions", sa.JSON),
    )
    engine = create_engine(fresh_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                roles.insert(),
                [
                    {"name": "staff", "description": "", "permissions": ["orders:read", "stock:write"]},
                    {"name": "manager", "description": "", "permissions": ["orders:write", "payments:read"]},
                    {"name": "cashier", "description": "", "permissions": ["orders:read"]},
                ],
            )
        await migrate.upgrade(fresh_url)
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.select(roles.c.name, roles.c.permissions))).all()
    finally:
        await engine.dispose()

    assert {name: sorted(permissions) for name, permissions in rows} == {
        "staff": ["orders:read", "orders:write", "stock:write"],
        "manager": ["orders:write", "payments:read", "payments:refund"],
        "cashier": ["orders:read"],
    }


def test_the_alembic_command_takes_database_url_and_loads_nothing_of_the_server() -> None:
    """`alembic` as developers run it reads DATABASE_URL from the environment, normalised, without server/."""
    script = (
        "import sys\n"
        "from alembic.config import main\n"
        "main(['upgrade', '0001', '--sql'])\n"
        "print('server modules:', sorted(m for m in sys.modules if m.split('.')[0] == 'server'), file=sys.stderr)\n"
    )
    env = {**os.environ, "DATABASE_URL": "postgres://kiosk@db.example/kiosk"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "server modules: []" in done.stderr
    # The URL's dialect, libpq-style scheme and all: SQLite would have no time zones in its DDL.
    assert "TIMESTAMP WITH TIME ZONE" in done.stdout


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
            assert "catalogue_version" not in await connection.run_sync(_tables)
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
            assert (_json(modes), _json(rates)) == (["eat_in", "takeaway"], [])
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
        "INSERT INTO branches (id, name, currency, timezone, tax_rate_bp, is_active)"
        " VALUES (1, 'Mitte', 'EUR', 'UTC', 1900, true)",
        "INSERT INTO devices (id, branch_id, kind, name, secret_hash, secret_version, is_active, info)"
        " VALUES (1, 1, 'kiosk', 'k', 'x', 1, true, '{}')",
        "INSERT INTO categories (id, name, position) VALUES (1, 'Mains', 0)",
        "INSERT INTO items_live (id, category_id, name, price, position) VALUES (1, 1, 'Burger', 900, 0)",
        "INSERT INTO option_groups (id, item_id, name, min_select, max_select, position)"
        " VALUES (1, 1, 'Extras', 0, 1, 0)",
        "INSERT INTO option_choices (id, group_id, name, price_delta, is_default, position)"
        " VALUES (1, 1, 'Cheese', 80, false, 0)",
        "INSERT INTO carts (id, branch_id, device_id, status, version) VALUES (1, 1, 1, 'open', 1)",
        "INSERT INTO cart_lines (id, cart_id, item_id, qty, choice_ids) VALUES (1, 1, 1, 2, '[1]')",
        "INSERT INTO orders (id, branch_id, number, business_date, status, currency, subtotal, tax, total)"
        " VALUES (1, 1, 1, '2026-12-07', 'paid', 'EUR', 756, 144, 900)",
        "INSERT INTO order_lines (id, order_id, item_id, name, qty, unit_price, options, line_total)"
        " VALUES (1, 1, 1, 'Burger', 1, 900, '[]', 900)",
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
                assert (_json(allergens), calories) == ([], None), table
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


def _json(value: Any) -> Any:
    """A JSON column's value as read without its type: text on SQLite, already parsed on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


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
            assert "dayparts" not in await connection.run_sync(_tables)
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
        "INSERT INTO branches (id, name, currency, timezone, tax_rate_bp, is_active)"
        " VALUES (1, 'Mitte', 'EUR', 'UTC', 1900, true)",
        "INSERT INTO devices (id, branch_id, kind, name, secret_hash, secret_version, is_active, info)"
        " VALUES (1, 1, 'kiosk', 'k', 'x', 1, true, '{}')",
        "INSERT INTO categories (id, name, position) VALUES (1, 'Mains', 0)",
        "INSERT INTO items_live (id, category_id, name, price, position) VALUES (1, 1, 'Burger', 900, 0)",
        "INSERT INTO option_groups (id, item_id, name, min_select, max_select, position)"
        " VALUES (1, 1, 'Extras', 0, 1, 0)",
        "INSERT INTO option_choices (id, group_id, name, price_delta, is_default, position)"
        " VALUES (1, 1, 'Cheese', 80, false, 0)",
        "INSERT INTO carts (id, branch_id, device_id, status, version) VALUES (1, 1, 1, 'open', 1)",
        "INSERT INTO orders (id, branch_id, number, business_date, status, currency, subtotal, tax, total)"
        " VALUES (1, 1, 1, '2026-12-07', 'paid', 'EUR', 756, 144, 900)",
        "INSERT INTO order_lines (id, order_id, item_id, name, qty, unit_price, options, line_total)"
        " VALUES (1, 1, 1, 'Burger', 1, 900, '[]', 900)",
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
            assert (branch[0], _json(branch[1]), branch[2]) == ("en", ["en"], "en")
            for table in ("categories", "items_live", "option_groups", "option_choices"):
                texts = (await connection.execute(sa.text(f"SELECT translations FROM {table}"))).scalar_one()
                assert _json(texts) == {}, table
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
            tables = await connection.run_sync(_tables)
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
        "INSERT INTO branches (id, name, currency, timezone, tax_rate_bp, is_active)"
        " VALUES (1, 'Mitte', 'EUR', 'UTC', 1900, true)",
        "INSERT INTO devices (id, branch_id, kind, name, secret_hash, secret_version, is_active, info)"
        " VALUES (1, 1, 'kiosk', 'k', 'x', 1, true, '{}')",
        "INSERT INTO categories (id, name, position) VALUES (1, 'Mains', 0)",
        "INSERT INTO items_live (id, category_id, name, price, position) VALUES (1, 1, 'Burger', 900, 0)",
        "INSERT INTO items_live (id, category_id, name, price, position) VALUES (2, 1, 'Menu', 1200, 1)",
        "INSERT INTO carts (id, branch_id, device_id, status, version) VALUES (1, 1, 1, 'open', 1)",
        "INSERT INTO cart_lines (id, cart_id, item_id, qty, choice_ids) VALUES (1, 1, 1, 2, '[]')",
        "INSERT INTO orders (id, branch_id, number, business_date, status, currency, subtotal, tax, total)"
        " VALUES (1, 1, 1, '2026-12-07', 'paid', 'EUR', 756, 144, 900)",
        "INSERT INTO order_lines (id, order_id, item_id, name, qty, unit_price, options, line_total)"
        " VALUES (1, 1, 1, 'Burger', 1, 900, '[]', 900)",
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
                assert [_json(value) for value in (await connection.execute(read)).scalars()] == [[]], table
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
            assert not {"combo_slots", "combo_slot_choices"} & await connection.run_sync(_tables)
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
            assert "pairing_codes" not in await connection.run_sync(_tables)
            assert (await connection.execute(sa.text("SELECT id FROM devices"))).scalars().all() == [2]
    finally:
        await engine.dispose()
