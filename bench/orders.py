"""Orders: the simulator's whole flow, as fast as it goes, against one instance and against two.

    .venv/bin/python -m bench.orders                    # 3 runs of 20 s each way; medians
    .venv/bin/python -m bench.orders --runs 1 --duration 10
    .venv/bin/python -m bench.orders --baseline main    # main's server and this one's, side by side

Kiosks order, terminals approve at once (no decline), kitchen displays start, ready and
complete every ticket at once; PostgreSQL + Redis, on a new `kiosk_bench` database each
run. One instance: the server alone on core 0 (`taskset`), the simulator on core 1. Two
instances (one Redis, one database): one server per core and the simulator beside them,
as a 2-core machine allows, so the two-instance figure shows what the cluster path costs
rather than added capacity.
PostgreSQL and Redis run on the same two cores in both cases.

There are many devices on purpose: every connection may send 20 commands a second
(PROTOCOL.md), so 100 kiosks and 64 kitchen displays keep each below its rate limit at
the target rate.

Flat out, the latencies are mostly queueing. So each repetition also runs the one-instance
set-up paced: 10 kiosks pausing between orders so that together they offer about half
the rate that repetition reached flat out; its latencies are what a busy restaurant sees.
And embedded: what `make run` serves (a SQLite file, the in-process broker, no Redis),
flat out from 10 kiosks and 8 kitchen displays, the server on core 0 as above.

To show what bounds the rate, every run also measures CPU time per complete order over the
same span as the rate (first order to the end of the kitchens' drain): of the server
process(es), of PostgreSQL and Redis together (every process named `postgres` or
`redis-server`, so nothing else should use them meanwhile), and of this process, the load
generator. Whichever side nears a whole core at the rate reached is the bound. It also counts
the transactions committed in the database over that span, background work included
(bench/transactions.py), per complete order.

With `--baseline REV` each run is made twice, first against the server at git revision REV
(checked out in a temporary git worktree, its database migrated and seeded by its own code),
then against this checkout's, pair after pair (one instance, paced, embedded; the two-instance set-up is
left out). The
simulator is this checkout's for both, so the load is the same. The paced run of each side
offers half of that side's own flat-out rate in the same repetition. The report sets the
medians side by side, with their spread and the ratio new/baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.baseline import checkout, revision, side_by_side, working_tree
from bench.figures import machine, median, ms, percentile, table
from bench.processes import (
    ROOT,
    bench_environment,
    cpu_seconds,
    cpu_seconds_named,
    database_of,
    pin,
    prepare_database,
    run_fast,
    running,
    server_command,
)
from bench.provision import provision_in
from bench.sim import Meter, Plan, Simulation
from bench.tally import Tally
from bench.transactions import Transactions
from server.settings import Settings

PORTS = (8321, 8322)
KIOSKS = 100
KITCHENS = 64
# Every kitchen display starts, readies and completes each ticket it takes: at 15 orders/s, 2 displays would send 22
# commands a second each, over the protocol's 20 per connection, and their refused and retried commands would be
# what the run measured.
EMBEDDED_KITCHENS = 8
EMBEDDED_DATABASE = Path(tempfile.gettempdir()) / "kiosk_bench.db"
PACED_KIOSKS = 10
# The paced run offers this share of the rate the same repetition reached flat out.
PACED_SHARE = 0.5
EMBEDDED_KIOSKS = 10
SETUPS = (
    ("one", "one instance"),
    ("paced", "one instance, paced at half that"),
    ("embedded", f"embedded (SQLite, no Redis), {EMBEDDED_KIOSKS} kiosks"),
    ("two", "two instances"),
)
# The process names (/proc/PID/comm) of PostgreSQL, whose backends are one per connection, and of Redis.
STORES = frozenset({"postgres", "redis-server"})


class CpuUse:
    """CPU seconds used during a run's orders (a `bench.sim.Meter`): servers, PostgreSQL with Redis, this process."""

    def __init__(self, server_pids: list[int]) -> None:
        self._server_pids = server_pids
        self._start = (0.0, 0.0, 0.0)
        self.used = (0.0, 0.0, 0.0)

    def _servers(self) -> float:
        return sum(cpu_seconds(pid) for pid in self._server_pids)

    async def start(self) -> None:
        """Take the first readings."""
        # This process's own clock last here and first in `stop`, so walking /proc is not counted as load.
        self._start = (self._servers(), cpu_seconds_named(STORES), time.process_time())

    async def stop(self) -> None:
        """Take the second readings; `used` holds the differences."""
        load_gen = time.process_time()
        servers, stores = self._servers(), cpu_seconds_named(STORES)
        self.used = (servers - self._start[0], stores - self._start[1], load_gen - self._start[2])


@dataclass
class Figures:
    """One run's figures."""

    rate: float
    place: tuple[float, float, float]
    kitchen: tuple[float, float, float]
    board: tuple[float, float, float]
    errors: int
    # CPU seconds per complete order: server(s), PostgreSQL + Redis, load generator (NaN when none completed).
    cpu: tuple[float, float, float]
    # Transactions committed in the database per complete order (NaN when none completed).
    transactions: float


# What the comparison with a baseline shows of each run, in the units of its table (ms for times).
MEASURES: tuple[tuple[str, Callable[[Figures], float]], ...] = (
    ("complete orders/s", lambda f: f.rate),
    ("server CPU ms per complete order", lambda f: f.cpu[0] * 1000),
    ("PostgreSQL + Redis CPU ms per complete order", lambda f: f.cpu[1] * 1000),
    ("order.place reply p50 (ms)", lambda f: f.place[0] * 1000),
    ("order.place reply p99 (ms)", lambda f: f.place[2] * 1000),
    ("approved → kitchen p50 (ms)", lambda f: f.kitchen[0] * 1000),
    ("approved → kitchen p99 (ms)", lambda f: f.kitchen[2] * 1000),
    ("committed transactions per complete order", lambda f: f.transactions),
    ("errors", lambda f: f.errors),
)


def _figures(tally: Tally, cpu: CpuUse, transactions: Transactions | None) -> Figures:
    def three(values: list[float]) -> tuple[float, float, float]:
        return percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)

    def per_order(seconds: float) -> float:
        return seconds / tally.completed if tally.completed else float("nan")

    servers, stores, load_gen = cpu.used
    return Figures(
        tally.completed / tally.elapsed_s,
        three(tally.place_s),
        three(tally.kitchen_s),
        three(tally.board_s),
        sum(tally.errors.values()),
        (per_order(servers), per_order(stores), per_order(load_gen)),
        per_order(transactions.committed) if transactions is not None else float("nan"),
    )


def _cpu_cell(cpu: Iterable[float]) -> str:
    return " / ".join(ms(seconds) for seconds in cpu)


async def _run_once(setup: str, root: Path, settings: Settings, duration_s: float, rate: float) -> Figures:
    """One run of the server at `root`, new database: `one` or `two` instances flat out, or `paced` at half `rate`."""
    # Every run on a new database, so that none inherits the open orders and payments of the last.
    instances = 2 if setup == "two" else 1
    kiosks = {"paced": PACED_KIOSKS, "embedded": EMBEDDED_KIOSKS}.get(setup, KIOSKS)
    kitchens = EMBEDDED_KITCHENS if setup == "embedded" else KITCHENS
    env = bench_environment(root)
    if setup == "embedded":
        # What `make run` serves: a SQLite file and the in-process broker.
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{EMBEDDED_DATABASE}"
        env["REDIS_URL"] = ""
    await prepare_database(env, fresh=True, root=root)
    fleet = await provision_in(root, env, kiosks=kiosks, kitchens=kitchens, boards=1)
    if setup == "paced" and rate <= 0:
        raise RuntimeError("the flat-out run completed no orders: there is no rate to pace at")
    # Each paced kiosk orders every `think` seconds or a little less often (its order takes time too).
    think_s = kiosks / (rate * PACED_SHARE) if setup == "paced" else 0.0
    # One instance: server on core 0, simulator on core 1. Two: a server per core, simulator unpinned.
    pin({1} if instances == 1 else {0, 1})
    async with AsyncExitStack() as stack:
        servers = []
        for index in range(instances):
            port = PORTS[index]
            servers.append(await stack.enter_async_context(running(server_command(port), port, env, index, root)))
        urls = [f"ws://127.0.0.1:{port}{settings.API_V1_STR}/ws" for port in PORTS[:instances]]
        plan = Plan(
            urls=urls,
            kiosks=kiosks,
            kitchens=kitchens,
            boards=1,
            duration_s=duration_s,
            approve_after_s=0.0,
            decline_share=0.0,
            kitchen_step_s=0.0,
            think_s=think_s,
            progress=False,
        )
        # Measured while the servers run: their pools keep their PostgreSQL backends (and those backends' time) alive.
        cpu = CpuUse([server.pid for server in servers])
        transactions = Transactions(*database_of(env)) if setup != "embedded" else None
        # Started in this order and stopped in the reverse: the CPU span is the orders' alone, without the waits
        # for PostgreSQL's statistics.
        meters: list[Meter] = [cpu] if transactions is None else [transactions, cpu]
        tally = await Simulation(plan, fleet, urls, meters=meters).run()
    figures = _figures(tally, cpu, transactions)
    errors = ", ".join(f"{code} {count}" for code, count in sorted(tally.errors.items())) or "none"
    print(
        f"{setup}: {figures.rate:.1f} complete orders/s, CPU ms per order: server / PG+Redis / load gen "
        f"{_cpu_cell(figures.cpu)}, transactions per order {figures.transactions:.1f}, errors: {errors}",
        file=sys.stderr,
    )
    return figures


def _medians(runs: int, duration_s: float, results: dict[str, list[Figures]]) -> str:
    rows = []
    for setup, label in SETUPS:
        done = results[setup]
        cells = [label, f"{median(f.rate for f in done):.1f}"]
        for measure in ("place", "kitchen", "board"):
            cells.append(" / ".join(ms(median(getattr(f, measure)[i] for f in done)) for i in range(3)))
        cells.append(f"{median(f.errors for f in done):.0f}")
        cells.append(_cpu_cell(median(f.cpu[part] for f in done) for part in range(3)))
        cells.append(f"{median(f.transactions for f in done):.1f}")
        rows.append(cells)
    header = [
        "set-up",
        "complete orders/s",
        "order.place reply p50/p95/p99 (ms)",
        "approved → kitchen p50/p95/p99 (ms)",
        "ready → board p50/p95/p99 (ms)",
        "errors",
        "CPU ms per order: server / PG+Redis / load gen",
        "transactions per order",
    ]
    return (
        f"Machine: {machine()}\n\nMedians of {runs} run(s) of {duration_s:g} s; {KIOSKS} kiosks with terminals "
        f"({PACED_KIOSKS} when paced), {KITCHENS} kitchen displays, 1 order board.\n\n{table(header, rows)}"
    )


def _comparison(runs: int, duration_s: float, revisions: str, results: dict[str, dict[str, list[Figures]]]) -> str:
    sections = [
        f"Machine: {machine()}",
        revisions,
        f"{runs} pair(s) of runs of {duration_s:g} s, baseline then new; {KIOSKS} kiosks with terminals "
        f"({PACED_KIOSKS} when paced), {KITCHENS} kitchen displays, 1 order board.",
    ]
    for setup, label in SETUPS[:3]:
        old, new = results["baseline"][setup], results["new"][setup]
        rows = [(name, [figure(f) for f in old], [figure(f) for f in new]) for name, figure in MEASURES]
        sections.append(f"**{label}**\n\n{side_by_side(rows)}")
    return "\n\n".join(sections)


async def _repetitions(
    runs: int, duration_s: float, settings: Settings, roots: dict[str, Path], setups: Iterable[tuple[str, str]]
) -> dict[str, dict[str, list[Figures]]]:
    """Each set-up `runs` times for each server (by name, the checkout it runs from), one after the other."""
    results: dict[str, dict[str, list[Figures]]] = {side: {setup: [] for setup, _ in setups} for side in roots}
    for number in range(1, runs + 1):
        print(f"run {number}/{runs}", file=sys.stderr)
        flat_out = dict.fromkeys(roots, 0.0)
        for setup, _ in setups:
            for side, root in roots.items():
                if len(roots) > 1:
                    print(f"{side}:", file=sys.stderr)
                figures = await _run_once(setup, root, settings, duration_s, flat_out[side])
                results[side][setup].append(figures)
                if setup == "one":
                    flat_out[side] = figures.rate
    return results


async def run(runs: int, duration_s: float, baseline: str | None = None) -> str:
    """Every set-up, `runs` times each (and against the server at git revision `baseline`, interleaved); the report."""
    env = bench_environment()
    settings = Settings(_env_file=None, DATABASE_URL=env["DATABASE_URL"], REDIS_URL=env["REDIS_URL"])
    if baseline is None:
        results = await _repetitions(runs, duration_s, settings, {"new": ROOT}, SETUPS)
        return _medians(runs, duration_s, results["new"])
    commit = revision(baseline)
    revisions = f"Baseline: {baseline} ({commit}); new: {working_tree()}."
    with checkout(commit) as baseline_root:
        results = await _repetitions(runs, duration_s, settings, {"baseline": baseline_root, "new": ROOT}, SETUPS[:3])
    return _comparison(runs, duration_s, revisions, results)


def main(argv: list[str] | None = None) -> int:
    """Run the orders benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.orders", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions (pairs with --baseline); medians (3)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run (20)")
    parser.add_argument("--baseline", metavar="REV", help="also run the server at git revision REV, interleaved")
    args = parser.parse_args(argv)
    print(run_fast(run(args.runs, args.duration, args.baseline)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
