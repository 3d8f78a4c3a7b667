"""The most connections a database had open at once over a span, sampled from `pg_stat_activity`."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

import asyncpg

# Often enough to see a burst of connections that each live a few hundred milliseconds.
INTERVAL_S = 0.05
_COUNT = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"


class PeakBackends:
    """`async with PeakBackends(admin_url, database) as peak:` samples until the block ends; then `peak.most`.

    The samples come over a connection to another database of the same server (`admin_url`), so that it is not
    one of those counted.
    """

    def __init__(self, admin_url: str, database: str) -> None:
        self._admin_url = admin_url
        self._database = database
        self.most = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PeakBackends:
        connection = await asyncpg.connect(self._admin_url)
        self._task = asyncio.create_task(self._sample(connection))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _sample(self, connection: asyncpg.Connection) -> None:
        try:
            while True:
                self.most = max(self.most, int(await connection.fetchval(_COUNT, self._database)))
                await asyncio.sleep(INTERVAL_S)
        finally:
            await connection.close()
