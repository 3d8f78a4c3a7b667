"""What a simulator run counts as it goes, the progress line it shows meanwhile, and the closing table it prints."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from bench.figures import ms, percentile, table


@dataclass
class Tally:
    """What happened, counted as it happens."""

    placed: int = 0
    paid: int = 0
    declined: int = 0
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # Closes the devices recovered from, by code, their reconnections and the commands they sent again.
    connections: Counter[str] = field(default_factory=Counter)
    completed_at: list[float] = field(default_factory=list)
    place_s: list[float] = field(default_factory=list)
    kitchen_s: list[float] = field(default_factory=list)
    board_s: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def elapsed_s(self) -> float:
        """Seconds from the first order to the end of the run (or now)."""
        return (self.ended or time.monotonic()) - self.started

    def report(self) -> str:
        """The closing table (Markdown)."""
        rate = self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0
        counts = table(
            ["orders", "count"],
            [
                ["placed", self.placed],
                ["paid", self.paid],
                ["completed", self.completed],
                ["declined payments", self.declined],
                ["completed per second", f"{rate:.1f}"],
            ],
        )
        errors = table(["error", "count"], sorted(self.errors.items()) or [["none", 0]])
        latencies = table(
            ["latency (ms)", "n", "p50", "p95", "p99"],
            [
                [label, len(values), *(ms(percentile(values, share)) for share in (0.5, 0.95, 0.99))]
                for label, values in (
                    ("order.place reply", self.place_s),
                    ("payment approved → order.queued (kitchen)", self.kitchen_s),
                    ("order.ready → board.updated (board)", self.board_s),
                )
            ],
        )
        connections = table(["connections", "count"], sorted(self.connections.items()) or [["no reconnection", 0]])
        return f"{counts}\n\n{errors}\n\n{latencies}\n\n{connections}"

    def complete(self) -> None:
        """One more order completed, now."""
        self.completed += 1
        self.completed_at.append(time.monotonic())


async def show_progress(tally: Tally, orders: int | None, duration_s: float | None) -> None:
    """Show a run's progress on stderr until cancelled: towards `orders`, else towards `duration_s` seconds.

    On a terminal the line is redrawn in place four times a second; elsewhere (a log) a line is printed every 5 s.
    """
    tty = sys.stderr.isatty()
    last_line = 0.0
    while True:
        if orders is not None:
            done, goal, unit = tally.placed, orders, "orders"
        else:
            done, goal, unit = round(tally.elapsed_s), round(duration_s or 0), "s"
        filled = int(30 * min(1.0, done / goal)) if goal else 30
        errors = sum(tally.errors.values())
        line = (
            f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{goal} {unit}  placed {tally.placed}  "
            f"paid {tally.paid}  completed {tally.completed}  errors {errors}"
        )
        now = time.monotonic()
        if tty:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
        elif now - last_line >= 5:
            print(line, file=sys.stderr, flush=True)
            last_line = now
        await asyncio.sleep(0.25)


class Outcomes:
    """Results that one task waits for and another reports, in whichever order they come."""

    def __init__(self) -> None:
        self._known: dict[int, str] = {}
        self._waiting: dict[int, asyncio.Future[str]] = {}

    def report(self, key: int, value: str) -> None:
        """`key` came out as `value`."""
        waiter = self._waiting.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(value)
        else:
            self._known[key] = value

    async def wait(self, key: int) -> str:
        """The value reported for `key`, waiting for it (the caller bounds the wait)."""
        if key in self._known:
            return self._known.pop(key)
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        try:
            return await waiter
        finally:
            self._waiting.pop(key, None)
