"""Alembic, driven from the project's own code: `python -m server migrate` and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from persistence.database import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the project's migrations, optionally bound to an open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`."""
    await _run(url, lambda connection: command.upgrade(alembic_config(connection), revision))


async def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at `url` down to `revision`."""
    await _run(url, lambda connection: command.downgrade(alembic_config(connection), revision))


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, None when it was never migrated."""
    found: list[str | None] = []
    await _run(url, lambda connection: found.append(MigrationContext.configure(connection).get_current_revision()))
    return found[0]


def head_revision() -> str | None:
    """The newest revision in `migrations/versions`."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _run(url: str, step: object) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(step)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
