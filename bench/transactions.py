"""Committed transactions of the benchmark's database over a span, background work included.

PostgreSQL counts them per database (`xact_commit` of `pg_stat_database`), but each backend
adds its own counts to that figure only now and then: at most once a second while it works,
about ten seconds after its last transaction once it falls idle (PostgreSQL 15:
PGSTAT_MIN_INTERVAL and PGSTAT_IDLE_INTERVAL), and as it exits. So the first reading waits
out that delay, and then holds everything before it (the devices' hellos). The second one
ends the database's connections instead, so that every backend reports its counts as it
exits: waiting would count the server's background work after the span too (an idle server
commits about five transactions a second). The server may then fail a database call or two
on an ended connection before its pool replaces it; the span is over by then. PostgreSQL must
run on this machine, as for the CPU figures: the backends' exit is seen in /proc.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

# Longer than PostgreSQL's delay before an idle backend reports its counts.
SETTLE_S = 11.0
# The backends ended at the second reading are gone well within this.
EXIT_LIMIT_S = 10.0
_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"


def _alive(pids: list[int]) -> bool:
    # Gone from /proc, not only from pg_stat_activity: a backend leaves that view before it reports its counts.
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


class Transactions:
    """Transactions committed in one database between `start` and `stop` (a `bench.sim.Meter`).

    The readings come over a connection to another database of the same server (`admin_url`),
    so that they add nothing to the count.
    """

    def __init__(self, admin_url: str, database: str, settle_s: float = SETTLE_S) -> None:
        self._admin_url = admin_url
        self._database = database
        self._settle_s = settle_s
        self._start = 0
        self.committed = 0

    async def _committed(self, connection: asyncpg.Connection) -> int:
        count = await connection.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", self._database)
        if count is None:
            raise RuntimeError(f"PostgreSQL has no statistics for the database {self._database!r}")
        return int(count)

    async def start(self) -> None:
        """Take the first reading, once what came before it has been counted."""
        await asyncio.sleep(self._settle_s)
        connection = await asyncpg.connect(self._admin_url)
        try:
            self._start = await self._committed(connection)
        finally:
            await connection.close()

    async def stop(self) -> None:
        """End the database's connections and take the second reading; `committed` holds the difference."""
        connection = await asyncpg.connect(self._admin_url)
        try:
            # The database's backends first, then ended: in one query the planner may call pg_terminate_backend
            # on rows before it filters them, every backend of the server included.
            pids = [row["pid"] for row in await connection.fetch(_BACKENDS, self._database)]
            await connection.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::integer[]) AS pid", pids)
            async with asyncio.timeout(EXIT_LIMIT_S):
                while _alive(pids):  # noqa: ASYNC110 (nothing to await but the processes' exit)
                    await asyncio.sleep(0.02)
            self.committed = await self._committed(connection) - self._start
        finally:
            await connection.close()
