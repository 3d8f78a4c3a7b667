"""INSERT ... ON CONFLICT: each database spells it in its own dialect, so an upsert is built once for each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Executable, Result
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


class Upsert:
    """One upsert statement, built at import for PostgreSQL and for SQLite (a statement object keeps its SQL cache
    key for the next call); `execute` runs the one of the session's database.

        _NEXT = Upsert(lambda insert: insert(table).values(...).on_conflict_do_update(...))
    """

    def __init__(self, build: Callable[[Callable[..., Any]], Executable]) -> None:
        self._by_dialect = {"postgresql": build(postgresql_insert), "sqlite": build(sqlite_insert)}

    async def execute(self, session: AsyncSession, params: Mapping[str, Any]) -> Result[Any]:
        """Run the upsert for the session's database with these bound parameters."""
        return await session.execute(self._by_dialect[session.get_bind().dialect.name], params)
