"""Scale: a chain of branches on one server process; first connect, rest, events, and reconnect storms.

    .venv/bin/python -m bench.scale                   # 1,000 branches: 10,000 sockets (heavy: minutes)
    .venv/bin/python -m bench.scale --branches 50     # 500 sockets, to try it

The server runs alone on core 0 (`taskset`), this process on core 1, with PostgreSQL and
Redis as the other benchmarks use them and the server's own heartbeat (WS_HEARTBEAT_S 20 s):
the sockets answer its pings. Each branch (bench/chain.py) has 4 kiosks, 2 payment
terminals, 2 kitchen displays, an order board and a member of staff: devices are subscribed
by their kind on hello, staff subscribe to the branch's orders and devices.

1. First connect: every socket connects, 100 at a time; the server's CPU and the database's
   committed transactions per connect; at rest, the server's RSS per socket and its CPU
   over 20 s with heartbeats and presence running.
2. Events: a member of staff's REST stock change (`POST /items/{id}/stock`, mode "set")
   round-robin over the branches at a steady rate; the latency from the call to each
   `stock.changed` at the branch's kiosks and kitchen displays.
3. Reconnect storm: every socket is reset at once; each reconnects after full-jitter
   backoff (base 0.1 s, cap 5 s) and resumes every channel from its last seq and epoch.
   Then again with the server killed (-9) and started anew instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from bench.backends import PeakBackends
from bench.chain import STAFF, Chain, provision_chain, sockets_per_branch
from bench.figures import machine, ms, percentile, table
from bench.processes import (
    Watched,
    bench_environment,
    cpu_seconds,
    database_of,
    forget_broker_state,
    pin,
    prepare_database,
    rss_bytes,
    run_fast,
    running,
    server_command,
)
from bench.seat_client import Follower, connect, cut, rejoin
from bench.transactions import Transactions
from server.settings import Settings

SERVER_PORT = 8331
CONNECT_BATCH = 100
WARM_UP = 20
SETTLE_S = 3.0
IDLE_S = 20.0
EVENT_RATE = 50.0
EVENTS_S = 20.0
STRAGGLE_S = 2.0
STORM_LIMIT_S = 180.0
# The server's pool of database connections (DATABASE_POOL_SIZE): a storm must not open more.
POOL_SIZE = Settings.model_fields["DATABASE_POOL_SIZE"].default
# The menu's subscribers in a branch: its kiosks and kitchen displays.
MENU_SOCKETS = 6
KIB = 1024


@dataclass
class FirstConnect:
    """Phase 1: connecting everything, then at rest."""

    sockets: int
    wall_s: float
    cpu_s: float
    transactions: int
    rss_before: int
    rss_after: int
    idle_share: float
    dropped: int


@dataclass
class Events:
    """Phase 2: stock changes and their deliveries."""

    calls: int
    failed: int
    expected: int
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass
class Storm:
    """Phase 3: one reconnect storm."""

    name: str
    sockets: int
    welcomes: list[float]
    cpu_s: float
    transactions: int
    gaps: int
    resumed: int
    attempts: int
    restart_s: float | None = None
    # The most connections the database had open at once meanwhile.
    database_connections: int = 0


# -- the phases ------------------------------------------------------------------------------


async def first_connect(url: str, followers: list[Follower], pid: int, meter: Transactions) -> FirstConnect:
    """Warm up, connect every follower in batches (timed, CPU and transactions counted); settle; idle."""
    warm = [Follower(f.seat) for f in followers[:WARM_UP]]
    await asyncio.gather(*(connect(url, f) for f in warm))
    cut(warm)
    await asyncio.sleep(SETTLE_S)
    rss_before = rss_bytes(pid)
    await meter.start()
    cpu = cpu_seconds(pid)
    started = time.monotonic()
    for start in range(0, len(followers), CONNECT_BATCH):
        await asyncio.gather(*(connect(url, f) for f in followers[start : start + CONNECT_BATCH]))
    wall_s = time.monotonic() - started
    cpu_s = cpu_seconds(pid) - cpu
    await meter.stop()
    await asyncio.sleep(SETTLE_S)
    rss_after = rss_bytes(pid)
    cpu = cpu_seconds(pid)
    await asyncio.sleep(IDLE_S)
    idle = (cpu_seconds(pid) - cpu) / IDLE_S
    dropped = sum(1 for f in followers if f.client is None or f.client.closed.done())
    return FirstConnect(len(followers), wall_s, cpu_s, meter.committed, rss_before, rss_after, idle, dropped)


async def events(
    base_url: str, chain: Chain, followers: list[Follower], arrivals: list[tuple[int, int, float]]
) -> Events:
    """Stock changes round-robin over the branches at EVENT_RATE for EVENTS_S; each delivery's latency."""
    staff = {f.seat.branch_id: f.seat.token for f in followers if f.seat.kind == STAFF}
    branches = list(staff)
    sent: dict[tuple[int, int], float] = {}
    result = Events(0, 0, 0)
    arrivals.clear()

    async def change(client: httpx.AsyncClient, branch_id: int, quantity: int) -> None:
        sent[(branch_id, quantity)] = time.monotonic()
        response = await client.post(
            f"/api/v1/items/{chain.item_id}/stock",
            json={"branch_id": branch_id, "mode": "set", "quantity": quantity},
            headers={"Authorization": f"Bearer {staff[branch_id]}"},
        )
        if response.status_code != 200:
            result.failed += 1
            print(f"stock change refused: {response.status_code} {response.text[:200]}", file=sys.stderr)

    total = int(EVENT_RATE * EVENTS_S)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        calls = []
        started = time.monotonic()
        for number in range(total):
            await asyncio.sleep(max(0.0, started + number / EVENT_RATE - time.monotonic()))
            calls.append(asyncio.create_task(change(client, branches[number % len(branches)], number + 1)))
        await asyncio.gather(*calls)
    await asyncio.sleep(STRAGGLE_S)
    result.calls = total
    result.expected = (total - result.failed) * MENU_SOCKETS
    result.latencies = [at - sent[(b, stock)] for b, stock, at in arrivals if (b, stock) in sent]
    # By now every socket has had at least two of the server's pings: one left unanswered would have closed it.
    result.dropped = sum(1 for f in followers if f.client is None or f.client.closed.done())
    return result


async def storm(
    name: str,
    url: str,
    followers: list[Follower],
    meter: Transactions,
    server: Watched,
    restart: Callable[[], Awaitable[Watched]] | None = None,
) -> tuple[Storm, Watched]:
    """Reset every connection at once (with `restart`: kill the server with -9 and start another) and resume them
    all with backoff; the figures, and the server that then holds the connections."""
    rng = random.Random(7)
    for follower in followers:
        follower.gaps = follower.resumed = follower.attempts = 0
    await meter.start()
    started = time.monotonic()
    if restart is not None:
        server.process.send_signal(signal.SIGKILL)
        await server.process.wait()
    cut(followers)
    cpu = cpu_seconds(server.pid) if restart is None else 0.0
    tasks = [asyncio.create_task(rejoin(url, f, rng)) for f in followers]
    restart_s = None
    async with PeakBackends(*database_of(bench_environment())) as backends:
        if restart is not None:
            server = await restart()
            restart_s = time.monotonic() - started
            cpu = cpu_seconds(server.pid)
        _, pending = await asyncio.wait(tasks, timeout=STORM_LIMIT_S)
    for task in pending:
        task.cancel()
    cpu_s = cpu_seconds(server.pid) - cpu
    await meter.stop()
    welcomed = [f.welcomed_at - started for f in followers if f.client is not None and f.welcomed_at > started]
    figures = Storm(
        name,
        len(followers),
        welcomed,
        cpu_s,
        meter.committed,
        sum(f.gaps for f in followers),
        sum(f.resumed for f in followers),
        sum(f.attempts for f in followers),
        restart_s,
        backends.most,
    )
    return figures, server


# -- the tables ------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    """A target's cell: met or not."""
    return "yes" if met else "**no**"


def first_connect_table(result: FirstConnect) -> str:
    """Phase 1 as a Markdown table: figure, target, met."""
    per_cpu = result.cpu_s / result.sockets
    per_rss = (result.rss_after - result.rss_before) / result.sockets
    rows = [
        ["sockets connected", f"{result.sockets:,}", "", ""],
        ["wall time to connect all", f"{result.wall_s:.1f} s", "", ""],
        ["server CPU per connect", f"{per_cpu * 1000:.2f} ms", "≤ 1.5 ms", verdict(per_cpu <= 0.0015)],
        ["database transactions per connect", f"{result.transactions / result.sockets:.2f}", "", ""],
        ["server RSS per socket at rest", f"{per_rss / KIB:.1f} KiB", "≤ 16 KB", verdict(per_rss <= 16_000)],
        ["server RSS with all connected", f"{result.rss_after / 2**20:.0f} MiB", "", ""],
        [
            f"idle server CPU ({IDLE_S:.0f} s)",
            f"{result.idle_share:.1%} of a core",
            "≤ 3%",
            verdict(result.idle_share <= 0.03),
        ],
        ["sockets closed by the server at rest", f"{result.dropped}", "0", verdict(result.dropped == 0)],
    ]
    return table(["first connect", "figure", "target", "met"], rows)


def events_table(result: Events) -> str:
    """Phase 2 as a Markdown table."""
    p99 = percentile(result.latencies, 0.99)
    rows = [
        ["stock changes (REST)", f"{result.calls:,} at {EVENT_RATE:.0f}/s, {result.failed} refused", "", ""],
        [
            "deliveries",
            f"{len(result.latencies):,} of {result.expected:,}",
            "all",
            verdict(len(result.latencies) == result.expected),
        ],
        ["event latency p50", f"{ms(percentile(result.latencies, 0.5))} ms", "", ""],
        ["event latency p99", f"{ms(p99)} ms", "< 50 ms", verdict(p99 < 0.05)],
        ["event latency max", f"{ms(max(result.latencies, default=float('nan')))} ms", "", ""],
        ["sockets closed by the server since connecting", f"{result.dropped}", "0", verdict(result.dropped == 0)],
    ]
    return table(["events", "figure", "target", "met"], rows)


def storm_table(result: Storm) -> str:
    """One storm as a Markdown table."""
    count = len(result.welcomes)
    last = max(result.welcomes, default=float("nan"))
    per_cpu = result.cpu_s / max(count, 1)
    per_xact = result.transactions / max(count, 1)
    rows = [["welcomed", f"{count:,} of {result.sockets:,}", "all", verdict(count == result.sockets)]]
    if result.restart_s is not None:
        rows.append(["server listening again after", f"{result.restart_s:.1f} s", "", ""])
    rows += [
        ["time until all welcomed", f"{last:.1f} s", "≤ 15 s", verdict(count == result.sockets and last <= 15)],
        ["time to welcome p50", f"{ms(percentile(result.welcomes, 0.5))} ms", "", ""],
        ["time to welcome p99", f"{ms(percentile(result.welcomes, 0.99))} ms", "", ""],
        ["connection attempts", f"{result.attempts:,}", "", ""],
        ["server CPU per resumed connect", f"{per_cpu * 1000:.2f} ms", "≤ 1 ms", verdict(per_cpu <= 0.001)],
        # The count is the database's: the server's background work (a few commits a second) is in it, so a storm of
        # hellos that ask the database nothing reads about 0.01.
        [
            "database transactions per resumed connect (background included)",
            f"{per_xact:.2f}",
            "0 (≤ 0.02)",
            verdict(per_xact <= 0.02),
        ],
        ["channels resumed", f"{result.resumed:,}", "", ""],
        [
            "database connections open at most",
            f"{result.database_connections}",
            f"≤ {POOL_SIZE} (the pool)",
            verdict(result.database_connections <= POOL_SIZE),
        ],
        ["gaps", f"{result.gaps}", "0", verdict(result.gaps == 0)],
    ]
    return table([result.name, "figure", "target", "met"], rows)


# -- the run ---------------------------------------------------------------------------------


async def run(branches: int) -> str:
    """Prepare, provision the chain, run the phases on one server (and its restart); the Markdown report."""
    env = bench_environment()
    env["WS_HEARTBEAT_S"] = str(Settings.model_fields["WS_HEARTBEAT_S"].default)
    await prepare_database(env)
    await forget_broker_state(env)
    settings = Settings(_env_file=None, DATABASE_URL=env["DATABASE_URL"], REDIS_URL=env["REDIS_URL"])
    started = time.monotonic()
    chain = await provision_chain(settings, branches)
    print(f"provisioned {len(chain.seats):,} sockets in {time.monotonic() - started:.1f} s", file=sys.stderr)
    pin({1})
    arrivals: list[tuple[int, int, float]] = []
    followers = [Follower(seat, arrivals) for seat in chain.seats]
    admin_url, database = database_of(env)
    meter = Transactions(admin_url, database)
    url = f"ws://127.0.0.1:{SERVER_PORT}/api/v1/ws"
    command = server_command(SERVER_PORT)
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(running(command, SERVER_PORT, env, core=0))
        first = await first_connect(url, followers, server.pid, meter)
        print(first_connect_table(first), file=sys.stderr)
        flow = await events(f"http://127.0.0.1:{SERVER_PORT}", chain, followers, arrivals)
        print(events_table(flow), file=sys.stderr)
        reset, server = await storm("reconnect storm", url, followers, meter, server)
        print(storm_table(reset), file=sys.stderr)

        async def restart() -> Watched:
            return await stack.enter_async_context(running(command, SERVER_PORT, env, core=0))

        killed, server = await storm("storm after kill -9", url, followers, meter, server, restart)
        print(storm_table(killed), file=sys.stderr)
        cut(followers)
    heading = (
        f"Machine: {machine()}\n\n{branches:,} branches, {sockets_per_branch()} sockets each: "
        f"{len(followers):,} sockets; WS_HEARTBEAT_S {env['WS_HEARTBEAT_S']}.\n\n"
    )
    return heading + "\n\n".join(
        (first_connect_table(first), events_table(flow), storm_table(reset), storm_table(killed))
    )


def main(argv: list[str] | None = None) -> int:
    """Run the scale benchmark and print its tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--branches", type=int, default=1000, help="branches of 10 sockets each (1000)")
    args = parser.parse_args(argv)
    print(run_fast(run(args.branches)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
