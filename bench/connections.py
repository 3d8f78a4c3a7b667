"""Connections: N authenticated idle device connections on one server process; RSS per connection, time to connect.

    .venv/bin/python -m bench.connections               # N = 5,000; 3 runs; medians
    .venv/bin/python -m bench.connections --count 1000 --runs 1

The server runs alone on core 0 (`taskset`), this process on core 1. Each connection is an
order board of the simulator's branch that says `hello` with its own token and gets its
`welcome` and its channel's snapshot, then stays idle. The server's RSS is read after a
warm-up (a few connections made and closed, so that code paths and pools are loaded)
and again once all N are connected and settled; the difference over N is the figure.
bench/reference_server.py (bare `websockets`) takes the same N connections in the same
run, for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass

from bench.figures import machine, median, table
from bench.processes import (
    bench_environment,
    pin,
    prepare_database,
    reference_command,
    rss_bytes,
    run_fast,
    running,
    server_command,
)
from bench.provision import provision_for
from bench.wire_client import WireClient, open_client
from channels import names
from server.settings import Settings

SERVER_PORT = 8311
REFERENCE_PORT = 8312
CONNECT_BATCH = 100
WARM_UP = 20
SETTLE_S = 2.0


@dataclass
class Figures:
    """One target's figures in one run."""

    per_connection: float
    connect_s: float
    rss: int


async def _open(url: str, hellos: list[bytes | None]) -> list[WireClient]:
    clients: list[WireClient] = []
    for start in range(0, len(hellos), CONNECT_BATCH):
        batch = hellos[start : start + CONNECT_BATCH]
        clients += await asyncio.gather(*(open_client(url, hello) for hello in batch))
    return clients


def _close(clients: list[WireClient]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.close()


async def measure(url: str, hellos: list[bytes | None], pid: int) -> Figures:
    """Warm up, read RSS, connect every client (timed), settle, read RSS again; close them."""
    _close(await _open(url, hellos[:WARM_UP]))
    await asyncio.sleep(SETTLE_S)
    before = rss_bytes(pid)
    started = time.monotonic()
    clients = await _open(url, hellos)
    connect_s = time.monotonic() - started
    await asyncio.sleep(SETTLE_S)
    after = rss_bytes(pid)
    _close(clients)
    return Figures((after - before) / len(hellos), connect_s, after)


async def run(count: int, runs: int) -> str:
    """Our server then the reference, `runs` times; the Markdown report."""
    env = bench_environment()
    await prepare_database(env)
    settings = Settings(_env_file=None, DATABASE_URL=env["DATABASE_URL"], REDIS_URL=env["REDIS_URL"])
    fleet = await provision_for(settings, kiosks=0, kitchens=0, boards=count)
    pin({1})
    hellos: list[bytes | None] = [json.dumps({"type": "hello", "token": b.token}).encode() for b in fleet.boards]
    reference_argv = reference_command(REFERENCE_PORT, env["REDIS_URL"], names.branch_board(fleet.branch_id))
    no_hellos: list[bytes | None] = [None] * count
    targets = (
        ("server", server_command(SERVER_PORT), SERVER_PORT, f"ws://127.0.0.1:{SERVER_PORT}/api/v1/ws", hellos),
        ("reference", reference_argv, REFERENCE_PORT, f"ws://127.0.0.1:{REFERENCE_PORT}/", no_hellos),
    )
    results: dict[str, list[Figures]] = {}
    for number in range(1, runs + 1):
        for target, command, port, url, target_hellos in targets:
            async with running(command, port, env, core=0) as process:
                figures = await measure(url, target_hellos, process.pid)
            results.setdefault(target, []).append(figures)
            print(
                f"run {number}/{runs} {target}: {figures.per_connection / 1024:.1f} KiB each, "
                f"{figures.connect_s:.1f} s to connect",
                file=sys.stderr,
            )
    ours, reference = results["server"], results["reference"]
    per, per_ref = median(f.per_connection for f in ours), median(f.per_connection for f in reference)
    took, took_ref = median(f.connect_s for f in ours), median(f.connect_s for f in reference)
    rss, rss_ref = median(f.rss for f in ours), median(f.rss for f in reference)
    rows = [
        ["RSS per idle connection", f"{per / 1024:.1f} KiB", f"{per_ref / 1024:.1f} KiB", f"{per / per_ref:.2f}x"],
        [f"time to connect {count:,}", f"{took:.1f} s", f"{took_ref:.1f} s", f"{took / took_ref:.2f}x"],
        ["server RSS with all connected", f"{rss / 2**20:.0f} MiB", f"{rss_ref / 2**20:.0f} MiB", ""],
    ]
    header = [f"N = {count:,}", "this server", "bare websockets", "ratio"]
    return f"Machine: {machine()}\n\nMedians of {runs} run(s).\n\n" + table(header, rows)


def main(argv: list[str] | None = None) -> int:
    """Run the connections benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.connections", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="connections (5000)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the table shows medians (3)")
    args = parser.parse_args(argv)
    print(run_fast(run(args.count, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
