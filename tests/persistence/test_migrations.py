"""The migrations build exactly the schema the models describe, down and up again, on both databases;
their files form one dated chain, they grant the default roles what they need, and `alembic` loads nothing
of the server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

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
from tests.persistence.migration_helpers import table_names

REPO = Path(__file__).resolve().parent.parent.parent


MIGRATION_FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})_[a-z0-9]+(?:_[a-z0-9]+)*\.py$")


MODEL_TABLES = set(Base.metadata.tables)


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
    assert await _inspect(fresh_url, table_names) & MODEL_TABLES == set()

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
