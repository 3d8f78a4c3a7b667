"""Orders: the simulator's whole flow, as fast as it goes, against one instance and against two.

    .venv/bin/python -m bench.orders                    # 3 runs of 20 s each way; medians
    .venv/bin/python -m bench.orders --runs 1 --duration 10

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

To show what bounds the rate, every run also measures CPU time per complete order over the
same span as the rate (first order to the end of the kitchens' drain): of the server
process(es), of PostgreSQL and Redis together (every process named `postgres` or
`redis-server`, so nothing else should use them meanwhile), and of this process, the load
generator. Whichever side nears a whole core at the rate reached is the bound.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from bench.figures import machine, median, ms, percentile, table
from bench.processes import (
    bench_environment,
    cpu_seconds,
    cpu_seconds_named,
    pin,
    prepare_database,
    run_fast,
    running,
    server_command,
)
from bench.provision import provision_for
from bench.sim import Plan, Simulation
from bench.tally import Tally
from server.settings import Settings

PORTS = (8321, 8322)
KIOSKS = 100
KITCHENS = 64
PACED_KIOSKS = 10
# The paced run offers this share of the rate the same repetition reached flat out.
PACED_SHARE = 0.5
SETUPS = (("one", "one instance"), ("paced", "one instance, paced at half that"), ("two", "two instances"))
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

    def start(self) -> None:
        """Take the first readings."""
        # This process's own clock last here and first in `stop`, so walking /proc is not counted as load.
        self._start = (self._servers(), cpu_seconds_named(STORES), time.process_time())

    def stop(self) -> None:
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


def _figures(tally: Tally, cpu: CpuUse) -> Figures:
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
    )


def _cpu_cell(cpu: Iterable[float]) -> str:
    return " / ".join(ms(seconds) for seconds in cpu)


async def _run_once(setup: str, settings: Settings, env: dict[str, str], duration_s: float, rate: float) -> Figures:
    """One run of one set-up on a new database: `one` and `two` instances flat out, or `paced` at half `rate`."""
    # Every run on a new database, so that none inherits the open orders and payments of the last.
    instances = 2 if setup == "two" else 1
    kiosks = PACED_KIOSKS if setup == "paced" else KIOSKS
    await prepare_database(env, fresh=True)
    fleet = await provision_for(settings, kiosks=kiosks, kitchens=KITCHENS, boards=1)
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
            servers.append(await stack.enter_async_context(running(server_command(port), port, env, core=index)))
        urls = [f"ws://127.0.0.1:{port}{settings.API_V1_STR}/ws" for port in PORTS[:instances]]
        plan = Plan(
            urls=urls,
            kiosks=kiosks,
            kitchens=KITCHENS,
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
        tally = await Simulation(plan, fleet, urls, meters=[cpu]).run()
    figures = _figures(tally, cpu)
    errors = ", ".join(f"{code} {count}" for code, count in sorted(tally.errors.items())) or "none"
    print(
        f"{setup}: {figures.rate:.1f} complete orders/s, CPU ms per order: server / PG+Redis / load gen "
        f"{_cpu_cell(figures.cpu)}, errors: {errors}",
        file=sys.stderr,
    )
    return figures


async def run(runs: int, duration_s: float) -> str:
    """Every set-up, `runs` times each; the Markdown report."""
    env = bench_environment()
    settings = Settings(_env_file=None, DATABASE_URL=env["DATABASE_URL"], REDIS_URL=env["REDIS_URL"])
    results: dict[str, list[Figures]] = {setup: [] for setup, _ in SETUPS}
    for number in range(1, runs + 1):
        print(f"run {number}/{runs}", file=sys.stderr)
        flat_out = 0.0
        for setup, _ in SETUPS:
            figures = await _run_once(setup, settings, env, duration_s, flat_out)
            results[setup].append(figures)
            if setup == "one":
                flat_out = figures.rate
    rows = []
    for setup, label in SETUPS:
        done = results[setup]
        cells = [label, f"{median(f.rate for f in done):.1f}"]
        for measure in ("place", "kitchen", "board"):
            cells.append(" / ".join(ms(median(getattr(f, measure)[i] for f in done)) for i in range(3)))
        cells.append(f"{median(f.errors for f in done):.0f}")
        cells.append(_cpu_cell(median(f.cpu[part] for f in done) for part in range(3)))
        rows.append(cells)
    header = [
        "set-up",
        "complete orders/s",
        "order.place reply p50/p95/p99 (ms)",
        "approved → kitchen p50/p95/p99 (ms)",
        "ready → board p50/p95/p99 (ms)",
        "errors",
        "CPU ms per order: server / PG+Redis / load gen",
    ]
    return (
        f"Machine: {machine()}\n\nMedians of {runs} run(s) of {duration_s:g} s; {KIOSKS} kiosks with terminals "
        f"({PACED_KIOSKS} when paced), {KITCHENS} kitchen displays, 1 order board.\n\n{table(header, rows)}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the orders benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.orders", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the table shows medians (3)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run (20)")
    args = parser.parse_args(argv)
    print(run_fast(run(args.runs, args.duration)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
