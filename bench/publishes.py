"""Publishes: how many events one Redis takes through the broker's publish script, and its CPU per event.

    .venv/bin/python -m bench.publishes                 # 3 runs of 10 s; medians
    .venv/bin/python -m bench.publishes --channels 1000 --batch 1

A Redis of its own (`redis-server --save '' --appendonly no` on a private port, stopped by
pid) takes batches of events from the Redis broker itself (channels/brokers/redis.py:
`publish_many`, one script call a batch, as a command's events go out), on `--channels`
channels picked at random, from `--concurrency` publishers at once. The same process
subscribes to every channel, as the instance holding each channel's devices would, so
every event is also delivered once. The figure that sizes a deployment is Redis's CPU per
event: one Redis core takes 1 / that many events a second, and a Redis Cluster shard is
one such Redis for the channels whose slots it owns (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures import machine, median, table
from bench.private import private_redis
from bench.processes import cpu_seconds, run_fast
from channels.brokers.base import Delivery, Outgoing
from channels.brokers.redis import RedisBroker
from channels.redis_clients import shared_client
from persistence.base import rfc3339, utcnow

REDIS_PORT = 56391
# An event's data as an order's events carry it: a few hundred bytes of JSON.
DATA = json.dumps({"id": 123456, "number": 42, "status": "paid", "lines": [{"item_id": 7, "qty": 2}] * 6})


class Counting:
    """The broker's listener: counts the deliveries."""

    def __init__(self) -> None:
        self.delivered = 0

    def deliver(self, delivery: Delivery) -> None:
        """One event of a subscribed channel."""
        self.delivered += 1

    def control(self, message: dict[str, Any]) -> None:
        """Not used here."""

    def reconnected(self) -> None:
        """Not expected here."""


async def _publisher(broker: RedisBroker, channels: list[str], batch: int, until: float, rng: random.Random) -> int:
    sent = 0
    while time.monotonic() < until:
        ts = rfc3339(utcnow())
        events = [
            Outgoing(rng.choice(channels), f"{rng.getrandbits(64):x}", "order.paid", DATA, ts) for _ in range(batch)
        ]
        await broker.publish_many(events)
        sent += batch
    return sent


async def run_once(args: argparse.Namespace, run: int) -> dict[str, float]:
    """One run on a Redis of its own: the figures of the table."""
    folder = Path(tempfile.mkdtemp(prefix="kiosk-publishes-"))
    async with private_redis(args.port, folder / "redis.log") as redis:
        assert redis.process is not None
        client = shared_client(redis.url)
        broker = RedisBroker(client, history_size=1000, history_ttl_s=3600, prefix="bench")
        listener = Counting()
        await broker.start(listener)
        try:
            channels = [f"branch:{n + 1}:kitchen" for n in range(args.channels)]
            for channel in channels:
                await broker.subscribe(channel)
            rng = random.Random(run)
            redis_before, ours_before, started = cpu_seconds(redis.process.pid), time.process_time(), time.monotonic()
            until = started + args.seconds
            sent = sum(
                await asyncio.gather(
                    *(_publisher(broker, channels, args.batch, until, rng) for _ in range(args.concurrency))
                )
            )
            elapsed = time.monotonic() - started
            redis_cpu, ours_cpu = cpu_seconds(redis.process.pid) - redis_before, time.process_time() - ours_before
            # The deliveries of the last batches are still on their way: wait for them, briefly.
            async with asyncio.timeout(10):
                while listener.delivered < sent:  # noqa: ASYNC110 (the listener counts; nothing to wait on)
                    await asyncio.sleep(0.05)
        finally:
            await broker.close()
            await client.aclose()
    figures = {
        "events/s": sent / elapsed,
        "Redis CPU µs per event": redis_cpu / sent * 1e6,
        # Redis's CPU is counted in clock ticks: a run too short to use one has no rate to show.
        "events/s one Redis core takes": sent / redis_cpu if redis_cpu else float("nan"),
        "this process's CPU µs per event": ours_cpu / sent * 1e6,
    }
    print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()), file=sys.stderr)
    return figures


async def main(args: argparse.Namespace) -> None:
    """Run, then print the medians with the machine."""
    runs = [await run_once(args, run) for run in range(args.runs)]
    print(machine())
    print()
    print(
        f"Medians of {args.runs} run(s) of {args.seconds:g} s; {args.concurrency} publishers, {args.batch} event(s) "
        f"a call, {args.channels} channels, each subscribed once."
    )
    print()
    print(
        table(
            ["measure", "median", "min–max"],
            [[k, f"{median(r[k] for r in runs):.1f}", _span(runs, k)] for k in runs[0]],
        )
    )


def _span(runs: list[dict[str, float]], key: str) -> str:
    values = [run[key] for run in runs]
    return f"{min(values):.1f}–{max(values):.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.publishes", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians (3)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per run (10)")
    parser.add_argument("--concurrency", type=int, default=32, help="publishers at once (32)")
    parser.add_argument("--batch", type=int, default=2, help="events per publish call, as a command's (2)")
    parser.add_argument("--channels", type=int, default=10_000, help="channels, each subscribed once (10000)")
    parser.add_argument("--port", type=int, default=REDIS_PORT, help=f"the private Redis's port ({REDIS_PORT})")
    return parser.parse_args(argv)


if __name__ == "__main__":
    run_fast(main(parse_args()))
