"""Churn: the server's memory across rounds of connections that come and go; it must stay flat.

    .venv/bin/python -m bench.churn                  # 10 rounds of 2,000 silent sockets + 2,000 hello/close
    .venv/bin/python -m bench.churn --rounds 3 --silent 500 --cycles 500
    .venv/bin/python -m bench.churn --trace          # also tracemalloc and gc counts inside the server

One server process (`python -m server serve`, pinned to core 0; this process on core 1).
Each round: `--silent` sockets connect and say nothing until the server closes them
(the hello timeout, 10 s), then `--cycles` hello/close cycles of real devices (kiosks and
order boards of the simulator's branch, `--concurrency` at a time: upgrade, `hello`,
`welcome` and snapshots, a close frame, the server's close). After each round, once the
server has settled, its RSS is read. The figure to watch is the last round against the
second (the first also loads code and fills pools).

`--trace` runs the server under tracemalloc: after each round it reports the memory Python
has allocated (tracemalloc's total), its RSS, the live objects by type and what grew most
since round 1 by source line. Python's total flat while RSS grows is the C allocator
holding freed memory, not a leak. `--env NAME=VALUE` sets a variable for the server only
(`--env MALLOC_ARENA_MAX=2`); `--trim` has the traced server call `malloc_trim(0)` before
each report, to show how much of its RSS the C allocator merely holds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import gc
import json
import os
import signal
import sys
import time
import tracemalloc
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import Any

from bench.figures import machine, table
from bench.processes import (
    bench_environment,
    pin,
    prepare_database,
    rss_bytes,
    run_fast,
    running,
    server_command,
)
from bench.provision import provision_for
from bench.wire_client import WireClient, masked_frame, open_client
from server.settings import Settings

SERVER_PORT = 8321
CONNECT_BATCH = 100
# The server's hello timeout (WS_HELLO_TIMEOUT_S), plus room for 2,000 closes on one core.
SILENT_CLOSE_LIMIT_S = 10.0 + 30.0
SETTLE_S = 3.0
CLOSE_NORMAL = masked_frame(b"\x03\xe8", opcode=8)
MIB = 2**20


@dataclass
class Round:
    """One round's figures."""

    number: int
    silent_closed: int
    silent_s: float
    cycles_done: int
    cycles_s: float
    rss: int
    trace: dict[str, Any] | None


# -- the load --------------------------------------------------------------------------------


async def _silent(url: str, count: int) -> tuple[int, float]:
    """Open `count` sockets that never say hello; wait until the server has closed them. (closed, seconds)"""
    started = time.monotonic()
    if not count:
        return 0, 0.0
    clients: list[WireClient] = []
    for start in range(0, count, CONNECT_BATCH):
        clients += await asyncio.gather(
            *(open_client(url, None) for _ in range(start, min(count, start + CONNECT_BATCH)))
        )
    done, _ = await asyncio.wait(
        [asyncio.ensure_future(client.closed) for client in clients], timeout=SILENT_CLOSE_LIMIT_S
    )
    for client in clients:
        if client.transport is not None and not client.transport.is_closing():
            client.transport.abort()
    return len(done), time.monotonic() - started


async def _one_cycle(url: str, hello: bytes) -> None:
    client = await open_client(url, hello, [])
    assert client.transport is not None
    client.transport.write(CLOSE_NORMAL)
    await asyncio.wait_for(client.closed, 10)


async def _cycles(url: str, hellos: list[bytes], count: int, concurrency: int) -> tuple[int, float]:
    """`count` hello/close cycles, `concurrency` at a time, over the devices' hellos in turn. (done, seconds)"""
    started = time.monotonic()
    turns = cycle(hellos)
    remaining = count
    done = 0

    async def worker() -> None:
        nonlocal remaining, done
        while remaining > 0:
            remaining -= 1
            await _one_cycle(url, next(turns))
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.monotonic() - started


# -- the traced server -----------------------------------------------------------------------


def _malloc_trim() -> bool:
    """Give the C allocator's free memory back to the system (glibc only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.malloc_trim(0))


class _Tracer:
    """Inside the server: on SIGUSR1, write what Python holds and what grew since the first report."""

    def __init__(self, report: Path, trim: bool) -> None:
        self._report = report
        self._trim = trim
        # The first snapshot waits on disk: kept in memory, it would count in every later total.
        self._first = report.with_suffix(".first")
        self._first.unlink(missing_ok=True)

    def __call__(self, signum: int, frame: object) -> None:
        # Before and after a full collection: garbage in reference cycles waits for one.
        before_gc = tracemalloc.get_traced_memory()[0]
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collection finds unreachable is kept in gc.garbage, to count
        unreachable = gc.collect()
        garbage = collections.Counter(type(item).__qualname__ for item in gc.garbage)
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
        trimmed = _malloc_trim() if self._trim else None
        # Counted before the snapshot is taken: the first snapshot, kept, is itself many objects.
        types = collections.Counter(type(item).__name__ for item in gc.get_objects())
        current, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        grew: list[str] = []
        if not self._first.exists():
            snapshot.dump(str(self._first))
        else:
            first = tracemalloc.Snapshot.load(str(self._first))
            for stat in snapshot.compare_to(first, "lineno")[:8]:
                grew.append(f"{stat.size_diff / 1024:+.0f} KiB {stat.count_diff:+d} {stat.traceback}")
        del snapshot
        line = {
            "traced": current,
            "traced_before_gc": before_gc,
            "unreachable": unreachable,
            "garbage": garbage.most_common(15),
            "peak": peak,
            "rss": rss_bytes(os.getpid()),
            "trimmed": trimmed,
            "types": types.most_common(12),
            "grew": grew,
        }
        with self._report.open("a") as out:
            out.write(json.dumps(line) + "\n")


def serve_traced(port: int, report: Path, trim: bool) -> int:
    """Run the server as `python -m server serve` does, under tracemalloc, reporting on SIGUSR1."""
    from server.cli import main as server_main

    tracemalloc.start()
    signal.signal(signal.SIGUSR1, _Tracer(report, trim))
    return server_main(["serve", "--host", "127.0.0.1", "--port", str(port)])


def _traced_command(port: int, report: Path, trim: bool) -> list[str]:
    argv = [sys.executable, "-m", "bench.churn", "--serve-traced", str(port), "--report", str(report)]
    return argv + (["--trim"] if trim else [])


async def _trace_report(pid: int, report: Path, seen: int) -> dict[str, Any] | None:
    """Ask the traced server for a report and wait for its line."""
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = await asyncio.to_thread(_lines, report)
        if len(lines) > seen:
            parsed: dict[str, Any] = json.loads(lines[seen])
            return parsed
        await asyncio.sleep(0.2)
    return None


def _lines(report: Path) -> list[str]:
    return report.read_text().splitlines() if report.exists() else []


def _remove(report: Path) -> None:
    report.unlink(missing_ok=True)
    report.with_suffix(".first").unlink(missing_ok=True)


# -- the run ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> str:
    """Prepare, start one server, run the rounds; the Markdown report."""
    env = bench_environment()
    await prepare_database(env)
    settings = Settings(_env_file=None, DATABASE_URL=env["DATABASE_URL"], REDIS_URL=env["REDIS_URL"])
    half = max(1, args.devices // 2)
    fleet = await provision_for(settings, kiosks=half, kitchens=0, boards=args.devices - half)
    hellos = [json.dumps({"type": "hello", "token": d.token}).encode() for d in fleet.kiosks + fleet.boards]
    pin({1})
    server_env = dict(env)
    for assignment in args.env:
        name, _, value = assignment.partition("=")
        server_env[name] = value
    report = Path(f"/tmp/churn-{os.getpid()}.jsonl")
    port = args.port
    command = _traced_command(port, report, args.trim) if args.trace else server_command(port)
    url = f"ws://127.0.0.1:{port}/api/v1/ws"
    rounds: list[Round] = []
    async with running(command, port, server_env, core=0) as server:
        await asyncio.sleep(SETTLE_S)
        print(f"started: RSS {rss_bytes(server.pid) / MIB:.1f} MiB", file=sys.stderr)
        for number in range(1, args.rounds + 1):
            silent_closed, silent_s = await _silent(url, args.silent)
            done, cycles_s = await _cycles(url, hellos, args.cycles, args.concurrency)
            await asyncio.sleep(SETTLE_S)
            trace = await _trace_report(server.pid, report, number - 1) if args.trace else None
            result = Round(number, silent_closed, silent_s, done, cycles_s, rss_bytes(server.pid), trace)
            rounds.append(result)
            _print_round(result)
    _remove(report)
    return _table(args, rounds)


def _print_round(result: Round) -> None:
    line = (
        f"round {result.number}: RSS {result.rss / MIB:.1f} MiB; {result.silent_closed} silent closed in "
        f"{result.silent_s:.1f} s; {result.cycles_done} cycles in {result.cycles_s:.1f} s"
    )
    if result.trace is not None:
        trace = result.trace
        line += (
            f"; traced {trace['traced_before_gc'] / MIB:.1f} MiB, {trace['unreachable']} unreachable objects, "
            f"{trace['traced'] / MIB:.1f} MiB after a full collection; server RSS {trace['rss'] / MIB:.1f} MiB"
        )
        line += f"\n  objects: {', '.join(f'{name} {count}' for name, count in trace['types'])}"
        line += f"\n  garbage: {', '.join(f'{name} {count}' for name, count in trace['garbage'])}"
        line += "".join(f"\n  grew: {grew}" for grew in trace["grew"])
    print(line, file=sys.stderr, flush=True)


def _table(args: argparse.Namespace, rounds: list[Round]) -> str:
    traced = any(result.trace for result in rounds)
    rows = []
    for result in rounds:
        row: list[object] = [result.number, f"{result.rss / MIB:.1f} MiB"]
        if result.trace:
            trace = result.trace
            row += [
                f"{trace['traced_before_gc'] / MIB:.1f} MiB",
                trace["unreachable"],
                f"{trace['traced'] / MIB:.1f} MiB",
            ]
        rows.append([*row, result.silent_closed, result.cycles_done])
    summary = ""
    if len(rounds) >= 3:
        second, last = rounds[1].rss, rounds[-1].rss
        summary = f"\n\nRSS after round {len(rounds)} against round 2: {(last - second) / second:+.1%}"
    header = ["round", "server RSS"]
    if traced:
        header += ["Python heap (tracemalloc)", "in cycles (objects)", "after a full collection"]
    header += [f"silent closed (of {args.silent:,})", f"hello/close cycles (of {args.cycles:,})"]
    options = f"{args.silent:,} silent sockets and {args.cycles:,} hello/close cycles a round, {args.devices} devices"
    extra = f"; server env {' '.join(args.env)}" if args.env else ""
    extra += "; malloc_trim(0) before each reading" if args.trim else ""
    return f"Machine: {machine()}\n\n{options}{extra}.\n\n" + table(header, rows) + summary


def main(argv: list[str] | None = None) -> int:
    """Run the churn benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.churn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds (10)")
    parser.add_argument("--silent", type=int, default=2000, help="sockets that never say hello, a round (2000)")
    parser.add_argument("--cycles", type=int, default=2000, help="device hello/close cycles, a round (2000)")
    parser.add_argument("--devices", type=int, default=200, help="devices taking turns: half kiosks, half boards")
    parser.add_argument("--concurrency", type=int, default=50, help="cycles in flight at once (50)")
    parser.add_argument("--port", type=int, default=SERVER_PORT, help=f"the server's port ({SERVER_PORT})")
    parser.add_argument("--trace", action="store_true", help="run the server under tracemalloc and report")
    parser.add_argument("--trim", action="store_true", help="with --trace: malloc_trim(0) before each report")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="for the server only")
    parser.add_argument("--serve-traced", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_traced is not None:
        return serve_traced(args.serve_traced, args.report, args.trim)
    with contextlib.suppress(KeyboardInterrupt):
        print(run_fast(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
