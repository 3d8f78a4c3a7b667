"""bench/publishes.py against a Redis of its own: every event published is delivered, and the figures add up."""

from __future__ import annotations

from bench.publishes import parse_args, run_once
from tests.live import free_port


async def test_a_short_run_delivers_every_event_and_reports_redis_cpu_per_event() -> None:
    """Half a second on 50 channels: events flow, each is delivered once (the run waits for that), and one Redis
    core's rate is the inverse of its CPU per event."""
    args = parse_args(["--seconds", "0.5", "--channels", "50", "--concurrency", "4", "--port", str(free_port())])
    figures = await run_once(args, 0)
    assert figures["events/s"] > 100
    per_event_s = figures["Redis CPU µs per event"] / 1e6
    assert abs(figures["events/s one Redis core takes"] * per_event_s - 1) < 1e-6
