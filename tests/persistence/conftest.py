"""Fixtures of the migration tests: an empty database of the backend that no other test touches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import persistence.tables  # noqa: F401  (registers every table on Base.metadata)
from tests.conftest import PG_TEST_DB, create_pg_database, drop_pg_database, pg_url


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
