"""Statements: the CPU one database statement costs this process, through each layer the server could use.

    .venv/bin/python -m bench.statements              # 3 runs of 2,000 statements each way; medians
    .venv/bin/python -m bench.statements --runs 1

The command log's lookup (a simple SELECT by key) against PostgreSQL, one
at a time on one connection, this process pinned to core 0: through asyncpg itself, and
through SQLAlchemy Core and an ORM session with the statement built on every call or
once (as the server's hot statements are). CPU time of this process per statement, so
the database's own time is not in it. It is much of what bounds the orders benchmark
(docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bench.figures import machine, median, table
from bench.processes import asyncpg_url, bench_environment, pin, prepare_database, run_fast
from persistence import base
from persistence.database_url import normalise_database_url
from persistence.tables import CommandLogEntry

COUNT = 2_000
PRINCIPAL = "device:1"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _per_statement_us(run_one: Callable[[int], Awaitable[object]]) -> float:
    for n in range(100):  # warm-up: prepared statements, caches
        await run_one(n)
    started = _cpu_s()
    for n in range(COUNT):
        await run_one(n)
    return (_cpu_s() - started) / COUNT * 1e6


async def _measure(url: str) -> dict[str, float]:
    """CPU µs per statement for each layer, one run."""
    results: dict[str, float] = {}
    raw = await asyncpg.connect(asyncpg_url(url))
    try:
        sql = "SELECT reply FROM command_log WHERE principal = $1 AND command_id = $2"
        results["asyncpg"] = await _per_statement_us(lambda n: raw.fetchrow(sql, PRINCIPAL, str(n)))
    finally:
        await raw.close()

    def lookup(n: int) -> Select[tuple[dict[str, Any]]]:
        return select(CommandLogEntry.reply).where(
            CommandLogEntry.principal == PRINCIPAL, CommandLogEntry.command_id == str(n)
        )

    log = base.table(CommandLogEntry)
    # As the server runs it: built once on the Core table, so its SQL cache key is computed once.
    built_once = select(log.c.reply).where(log.c.principal == bindparam("p"), log.c.command_id == bindparam("c"))

    def params(n: int) -> dict[str, str]:
        return {"p": PRINCIPAL, "c": str(n)}

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            results["SQLAlchemy Core, built per call"] = await _per_statement_us(
                lambda n: connection.execute(lookup(n))
            )
            results["SQLAlchemy Core, built once"] = await _per_statement_us(
                lambda n: connection.execute(built_once, params(n))
            )
        async with AsyncSession(engine) as session:
            results["ORM session, ORM columns, built per call"] = await _per_statement_us(
                lambda n: session.execute(lookup(n))
            )
            results["ORM session, Core table, built once"] = await _per_statement_us(
                lambda n: session.execute(built_once, params(n))
            )
    finally:
        await engine.dispose()
    return results


async def run(runs: int) -> str:
    """`runs` measurements of every layer; the Markdown report."""
    env = bench_environment()
    await prepare_database(env)
    pin({0})
    url = normalise_database_url(env["DATABASE_URL"])
    measured = [await _measure(url) for _ in range(runs)]
    floor = median(m["asyncpg"] for m in measured)
    rows = []
    for layer in measured[0]:
        cost = median(m[layer] for m in measured)
        rows.append([layer, f"{cost:.0f}", f"{cost / floor:.1f}x"])
    return (
        f"Machine: {machine()}\n\nMedians of {runs} run(s) of {COUNT:,} statements each.\n\n"
        f"{table(['through', 'CPU µs per statement', 'ratio to asyncpg'], rows)}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the statements benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.statements", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the table shows medians (3)")
    args = parser.parse_args(argv)
    print(run_fast(run(args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
