"""What a simulator run counts as it goes, and the closing table it prints."""

from __future__ import annotations

import asyncio
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
