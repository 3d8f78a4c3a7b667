"""Soak: the simulator against two instances for a long while; memory, connections and latency per window.

    .venv/bin/python -m bench.soak                              # an hour, five-minute windows
    .venv/bin/python -m bench.soak --duration 600 --window 60   # a try

A private PostgreSQL and Redis (started here on ports of their own and stopped by pid at the
end, as bench/faults.py does: a concurrent benchmark on the machine's own stores is left
alone), two server instances, the
simulator at a modest, steady rate (`--kiosks` kiosks pausing `--think` seconds between
orders). At the end of every window it prints one row: the resident memory of each
instance, their open WebSocket connections (`ws_connections` of `/metrics`), the orders
completed in the window and the p99 of the `order.place` reply and of payment approved →
`order.queued`. On a healthy server every column is flat: memory that climbs window after
window is a leak, latency that climbs is a queue growing somewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack

import httpx

from bench.figures import machine, ms, percentile, table
from bench.private import private_folder, private_postgres, private_redis
from bench.processes import bench_environment, prepare_database, rss_bytes, run_fast, running, server_command
from bench.provision import provision_for, reissue
from bench.sim import Plan, Simulation
from server.settings import Settings

PORTS = (8341, 8342)
POSTGRES_PORT = 55442
REDIS_PORT = 56389


async def open_connections(http: httpx.AsyncClient, port: int) -> int:
    """The instance's open WebSocket connections, from its metrics (-1 when it does not answer)."""
    try:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return -1
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(("ws_connections{", "ws_connections "))
        )
    )


async def _sample(simulation: Simulation, pids: list[int], window_s: float, rows: list[list[object]]) -> None:
    """Every `window_s`, one row for the window just ended."""
    started = time.monotonic()
    place_at = kitchen_at = completed_at = 0
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            await asyncio.sleep(window_s - (time.monotonic() - started) % window_s)
            tally = simulation.tally
            place, kitchen = tally.place_s[place_at:], tally.kitchen_s[kitchen_at:]
            place_at, kitchen_at = len(tally.place_s), len(tally.kitchen_s)
            completed, completed_at = tally.completed - completed_at, tally.completed
            row: list[object] = [f"{(time.monotonic() - started) / 60:.1f}"]
            row += [f"{rss_bytes(pid) / 2**20:.0f}" for pid in pids]
            row += [await open_connections(http, port) for port in PORTS]
            row += [completed, ms(percentile(place, 0.99)), ms(percentile(kitchen, 0.99))]
            rows.append(row)
            print(" | ".join(str(cell) for cell in row), file=sys.stderr, flush=True)


async def run(duration_s: float, window_s: float, kiosks: int, think_s: float) -> str:
    """Run the soak; the report."""
    folder = private_folder("kiosk-soak-")
    async with (
        private_postgres(folder / "pg", POSTGRES_PORT) as postgres,
        private_redis(REDIS_PORT, folder / "redis.log") as redis,
    ):
        return await _soak(postgres.url, redis.url, duration_s, window_s, kiosks, think_s)


async def _soak(
    database_url: str, redis_url: str, duration_s: float, window_s: float, kiosks: int, think_s: float
) -> str:
    env = bench_environment()
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url)
    settings = Settings(_env_file=None, DATABASE_URL=env["DATABASE_URL"], REDIS_URL=env["REDIS_URL"])
    await prepare_database(env, fresh=True)
    fleet = await provision_for(settings, kiosks=kiosks, kitchens=2, boards=1)
    header = [
        "minute",
        "RSS A (MiB)",
        "RSS B (MiB)",
        "connections A",
        "connections B",
        "completed",
        "order.place p99 (ms)",
        "approved → queued p99 (ms)",
    ]
    print(" | ".join(header), file=sys.stderr)
    rows: list[list[object]] = []
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(running(server_command(p), p, env, core=None)) for p in PORTS]
        urls = [f"ws://127.0.0.1:{port}{settings.API_V1_STR}/ws" for port in PORTS]
        plan = Plan(
            urls=urls,
            kiosks=kiosks,
            kitchens=2,
            boards=1,
            duration_s=duration_s,
            approve_after_s=0.2,
            decline_share=0.1,
            kitchen_step_s=0.2,
            think_s=think_s,
            progress=False,
        )
        simulation = Simulation(plan, fleet, urls, renew=lambda device: reissue(settings, device))
        sampler = asyncio.ensure_future(_sample(simulation, [s.pid for s in servers], window_s, rows))
        try:
            tally = await simulation.run()
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
    errors = ", ".join(f"{code} {n}" for code, n in sorted(tally.errors.items())) or "none"
    reconnects = ", ".join(f"{code} {n}" for code, n in sorted(tally.connections.items())) or "none"
    return (
        f"Machine: {machine()}\n\n{duration_s:g} s in windows of {window_s:g} s; {kiosks} kiosks pausing {think_s:g} s,"
        " "
        f"2 kitchen displays, 1 board, two instances.\n\n{table(header, rows)}\n\n"
        f"Orders: {tally.placed} placed, {tally.completed} completed; errors: {errors}; connections: {reconnects}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds to run (3600)")
    parser.add_argument("--window", type=float, default=300.0, help="seconds per row (300)")
    parser.add_argument("--kiosks", type=int, default=10, help="kiosks, each with a terminal (10)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds a kiosk waits between orders (1)")
    args = parser.parse_args(argv)
    if args.window <= 0 or args.duration < args.window:
        print("need --window > 0 and --duration at least one window", file=sys.stderr)
        return 2
    print(run_fast(run(args.duration, args.window, args.kiosks, args.think)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
