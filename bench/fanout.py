"""Fan-out: one channel, S subscribers, events injected through Redis as another instance publishes them.

    .venv/bin/python -m bench.fanout              # S = 100 and 1,000; 3 runs; medians
    .venv/bin/python -m bench.fanout --runs 1 --sizes 1000

The server under test runs alone on core 0 (`taskset`); this process (the subscribers'
load generator and the publisher) stays on core 1, and its CPU share is printed so that
it can be seen not to be the bottleneck. In the same run, bench/reference_server.py (bare
`websockets`: `serve()` + `broadcast()` of the frame as Redis delivers it) serves the same
subscribers the same events, so every figure has its ratio to it beside it.

For each S: a burst (events published as fast as Redis takes them, 32 in flight;
deliveries/s from the first publish to the last delivery), then fixed rates of 2k, 20k
and 50k deliveries/s for a few seconds each (p50/p99 latency from publish to receipt, on
every tenth subscriber). The subscribers are
order boards of the simulator's branch on `branch:{b}:board`, in PostgreSQL + Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field

from bench.figures import machine, median, ms, percentile, table
from bench.processes import (
    CpuMeter,
    bench_environment,
    pin,
    prepare_database,
    redis_pid,
    reference_command,
    run_fast,
    running,
    server_command,
)
from bench.provision import provision_for
from bench.wire_client import WireClient, open_client
from channels import names
from channels.backend import create_backend
from channels.brokers import Broker
from channels.wire import wire_frame
from persistence.base import rfc3339, utcnow
from server.settings import Settings

SERVER_PORT = 8301
REFERENCE_PORT = 8302
RATES = (2_000, 20_000, 50_000)
BURST_DELIVERIES = 300_000
# Publishes in flight at once during a burst: one at a time, the publisher would be the bottleneck at S = 100.
BURST_IN_FLIGHT = 32
RATE_SECONDS = 4.0
SAMPLE_EVERY = 10
CONNECT_BATCH = 100
DRAIN_S = 10.0


@dataclass
class Figures:
    """One target's figures for one S in one run."""

    burst: float = 0.0
    burst_cpu: dict[str, float] = field(default_factory=dict)
    p50: dict[int, float] = field(default_factory=dict)
    p99: dict[int, float] = field(default_factory=dict)
    delivered: dict[int, float] = field(default_factory=dict)


class Publisher:
    """Publishes `board.updated` events on the channel with the broker's own script, as any instance does."""

    def __init__(self, broker: Broker, channel: str) -> None:
        self._broker = broker
        self._channel = channel
        self._count = 0

    async def publish(self) -> int:
        """One event carrying its send time (`t`, monotonic seconds: one clock for every process here).

        Returns the size of its frame on the wire, which every subscriber receives.
        """
        self._count += 1
        data = json.dumps({"order_id": self._count, "number": self._count % 1000, "column": "ready"})
        data = data[:-1] + f',"t":{time.monotonic():.6f}}}'
        event_id = f"bench-{time.time_ns()}-{self._count}"
        delivery = await self._broker.publish(self._channel, event_id, "board.updated", data, rfc3339(utcnow()))
        return len(wire_frame(delivery.frame))

    async def burst(self, count: int) -> int:
        """`count` events as fast as Redis takes them (`BURST_IN_FLIGHT` at a time); their total frame size."""
        sent = 0
        for start in range(0, count, BURST_IN_FLIGHT):
            chunk = min(BURST_IN_FLIGHT, count - start)
            sent += sum(await asyncio.gather(*(self.publish() for _ in range(chunk))))
        return sent


async def _connect(url: str, hellos: list[bytes | None], samples: list[float]) -> list[WireClient]:
    clients: list[WireClient] = []
    for start in range(0, len(hellos), CONNECT_BATCH):
        batch = hellos[start : start + CONNECT_BATCH]
        clients += await asyncio.gather(
            *(
                open_client(url, hello, samples if (start + i) % SAMPLE_EVERY == 0 else None)
                for i, hello in enumerate(batch)
            )
        )
    return clients


def _received(clients: list[WireClient]) -> int:
    return sum(client.received for client in clients)


async def _wait_for(clients: list[WireClient], expected: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while _received(clients) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.002)  # counters of plain protocol objects: nothing to wait on


async def measure(
    url: str, hellos: list[bytes | None], publisher: Publisher, meter_pids: dict[str, int | None]
) -> Figures:
    """Connect the subscribers to `url`, then the burst and the fixed rates; close them."""
    samples: list[float] = []
    clients = await _connect(url, hellos, samples)
    size = len(clients)
    figures = Figures()
    await asyncio.sleep(1.0)  # snapshots and welcomes settle
    try:
        # Warm-up: a few events through every path.
        before = _received(clients)
        sent = sum([await publisher.publish() for _ in range(5)])
        await _wait_for(clients, before + sent * size, DRAIN_S)

        events = max(1, BURST_DELIVERIES // size)
        before = _received(clients)
        meter = CpuMeter(meter_pids)
        meter.start()
        started = time.monotonic()
        sent = await publisher.burst(events)
        await _wait_for(clients, before + sent * size, DRAIN_S * 3)
        elapsed = time.monotonic() - started
        # Bytes received over the mean frame size: deliveries.
        figures.burst = (_received(clients) - before) * events / sent / elapsed
        figures.burst_cpu = meter.read()

        for rate in RATES:
            samples.clear()
            per_second = rate / size
            count = max(1, round(per_second * RATE_SECONDS))
            before = _received(clients)
            start = time.monotonic()
            sent = 0
            for index in range(count):
                due = start + index / per_second
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent += await publisher.publish()
            await _wait_for(clients, before + sent * size, DRAIN_S)
            figures.delivered[rate] = (_received(clients) - before) / (sent * size)
            figures.p50[rate] = percentile(samples, 0.5)
            figures.p99[rate] = percentile(samples, 0.99)
    finally:
        for client in clients:
            if client.transport is not None:
                client.transport.close()
    return figures


async def run(sizes: list[int], runs: int) -> str:
    """Every run: our server then the reference, for each S. The Markdown report."""
    env = bench_environment()
    await prepare_database(env)
    settings = Settings(_env_file=None, DATABASE_URL=env["DATABASE_URL"], REDIS_URL=env["REDIS_URL"])
    fleet = await provision_for(settings, kiosks=0, kitchens=0, boards=max(sizes))
    channel = names.branch_board(fleet.branch_id)
    backend = create_backend(env["REDIS_URL"], history_size=settings.HISTORY_SIZE, history_ttl_s=settings.HISTORY_TTL_S)
    publisher = Publisher(backend.broker, channel)
    pin({1})
    server_ws = f"ws://127.0.0.1:{SERVER_PORT}{settings.API_V1_STR}/ws"
    reference_ws = f"ws://127.0.0.1:{REFERENCE_PORT}/"
    reference_argv = reference_command(REFERENCE_PORT, env["REDIS_URL"], channel)
    results: dict[tuple[str, int], list[Figures]] = {}
    for number in range(1, runs + 1):
        for size in sizes:
            hellos: list[bytes | None] = [
                json.dumps({"type": "hello", "token": board.token}).encode() for board in fleet.boards[:size]
            ]
            no_hellos: list[bytes | None] = [None] * size  # the reference has no protocol
            for target, command, port, url, target_hellos in (
                ("server", server_command(SERVER_PORT), SERVER_PORT, server_ws, hellos),
                ("reference", reference_argv, REFERENCE_PORT, reference_ws, no_hellos),
            ):
                async with running(command, port, env, core=0) as process:
                    pids = {"server": process.pid, "load generator": os.getpid(), "redis": redis_pid()}
                    figures = await measure(url, target_hellos, publisher, pids)
                results.setdefault((target, size), []).append(figures)
                print(f"run {number}/{runs} S={size} {target}: burst {figures.burst:,.0f}/s", file=sys.stderr)
    await backend.broker.close()
    await backend.close()
    return _report(results, sizes, runs)


def _report(results: dict[tuple[str, int], list[Figures]], sizes: list[int], runs: int) -> str:
    rows = []
    for size in sizes:
        ours, reference = results[("server", size)], results[("reference", size)]
        burst, burst_ref = median(f.burst for f in ours), median(f.burst for f in reference)
        cpu = {name: median(f.burst_cpu.get(name, 0.0) for f in ours) for name in ("server", "load generator", "redis")}
        rows.append(
            [
                size,
                "burst",
                f"{burst:,.0f}/s",
                f"{burst_ref:,.0f}/s",
                f"{burst / burst_ref:.2f}x",
                f"server {cpu['server']:.0%}, load gen {cpu['load generator']:.0%}, redis {cpu['redis']:.0%}",
            ]
        )
        for rate in RATES:
            p50, p50_ref = median(f.p50[rate] for f in ours), median(f.p50[rate] for f in reference)
            p99, p99_ref = median(f.p99[rate] for f in ours), median(f.p99[rate] for f in reference)
            got = median(f.delivered[rate] for f in ours)
            rows.append(
                [
                    size,
                    f"{rate:,}/s",
                    f"p50 {ms(p50)} ms, p99 {ms(p99)} ms",
                    f"p50 {ms(p50_ref)} ms, p99 {ms(p99_ref)} ms",
                    f"p99 {p99 / p99_ref:.2f}x" if p99_ref == p99_ref and p99_ref > 0 else "–",
                    f"{got:.1%} delivered",
                ]
            )
    header = ["S", "load", "this server", "bare websockets", "ratio", "notes"]
    return f"Machine: {machine()}\n\nMedians of {runs} run(s).\n\n{table(header, rows)}"


def main(argv: list[str] | None = None) -> int:
    """Run the fan-out benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="subscriber counts (100 1000)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the table shows medians (3)")
    args = parser.parse_args(argv)
    print(run_fast(run(args.sizes, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
