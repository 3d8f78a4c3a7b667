"""The processes a benchmark runs and watches: servers pinned to a core, their CPU time and memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Collection, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from channels.backend import create_backend
from persistence.database_url import normalise_database_url
from server.cli import where

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/kiosk_bench"
BENCH_REDIS_URL = "redis://127.0.0.1:6379/0"
TICKS = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


def bench_environment(root: Path = ROOT) -> dict[str, str]:
    """The environment of the benchmarks and their servers: PostgreSQL and Redis (overridable), the code at `root`."""
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", BENCH_DATABASE_URL)
    env.setdefault("REDIS_URL", BENCH_REDIS_URL)
    env.setdefault("ENVIRONMENT", "development")
    # The load generator's connections count bytes and answer no pings; a run is far shorter than this.
    env.setdefault("WS_HEARTBEAT_S", "3600")
    # A simulated kiosk flat out sends commands far faster than a person can: at the protocol's per-device limit the
    # runs would measure its refusals and the retries after them.
    env.setdefault("WS_COMMAND_RATE_PER_S", "1000")
    env["PYTHONPATH"] = str(root)
    return env


def asyncpg_url(url: str) -> str:
    """A SQLAlchemy asyncpg URL as asyncpg itself takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


def run_fast(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop where it is installed (the load generator must not be the bottleneck)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def pin(cores: set[int]) -> None:
    """Keep this process on `cores` (when the machine has them)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cores)


def database_of(env: dict[str, str]) -> tuple[str, str]:
    """The asyncpg URL of the PostgreSQL server's `postgres` database, and the name of the benchmark's database."""
    url = asyncpg_url(normalise_database_url(env["DATABASE_URL"]))
    base, _, name = url.rpartition("/")
    return f"{base}/postgres", name.split("?")[0]


async def _create_pg_database(env: dict[str, str], *, fresh: bool) -> None:
    """Create the benchmark's PostgreSQL database when missing (`fresh`: anew)."""
    admin_url, name = database_of(env)
    connection = await asyncpg.connect(admin_url)
    try:
        if fresh:
            # Orders, carts and payments left by an earlier run would weigh on this one's snapshots and deadlines.
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


async def prepare_database(env: dict[str, str], *, fresh: bool = False, root: Path = ROOT) -> None:
    """Create the benchmark's database when missing (`fresh`: anew), migrate it, load the demo menu.

    PostgreSQL, or a SQLite file for the embedded set-up. The migrations and the demo are those of the checkout at
    `root`, run by its own command line.
    """
    url = make_url(normalise_database_url(env["DATABASE_URL"]))
    if url.get_backend_name() == "sqlite":
        if fresh and url.database:
            _remove_sqlite(Path(url.database))
    else:
        await _create_pg_database(env, fresh=fresh)
    for command in ("migrate", "seed-demo"):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", command, env=env, cwd=root, stdout=asyncio.subprocess.DEVNULL
        )
        if await process.wait():
            raise RuntimeError(f"`python -m server {command}` failed with {process.returncode}")
    print(f"database: {where(normalise_database_url(env['DATABASE_URL']))}", file=sys.stderr)


async def forget_broker_state(env: dict[str, str], prefix: str = "kiosk") -> None:
    """Delete the server's keys from the benchmark's Redis (or cluster), so that a run starts as a new deployment
    would: no channel history and no principal pinned by an earlier run of the same devices."""
    if not env.get("REDIS_URL"):
        return
    backend = create_backend(env["REDIS_URL"], history_size=1, history_ttl_s=1, prefix=prefix)
    try:
        redis = backend.redis
        assert redis is not None
        batch: list[str] = []
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                await redis.delete(*batch)
                batch.clear()
        if batch:
            await redis.delete(*batch)
    finally:
        await backend.close()


@dataclass
class Watched:
    """A running process: its pid, to read its CPU time and memory."""

    process: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds_named(names: Collection[str]) -> float:
    """User plus system CPU seconds used so far by every process whose name (/proc/PID/comm) is in `names`.

    Children that have exited and been waited for count in their parent's figure, so that the
    difference of two readings keeps a PostgreSQL backend that ended between them (its time has
    moved to the postmaster's).
    """
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry.path, "comm").read_text().rstrip("\n") not in names:
                continue
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / TICKS


def rss_bytes(pid: int) -> int:
    """The process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def redis_pid() -> int | None:
    """The local Redis server's pid, to show its CPU beside ours."""
    found = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


class CpuMeter:
    """CPU used by some processes between `start` and `read`, as a share of one core each."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float] = {}
        self._started = 0.0

    def start(self) -> None:
        """Begin measuring."""
        self._started = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def read(self) -> dict[str, float]:
        """Each process's CPU share of one core since `start` (1.0 = a whole core)."""
        wall = max(time.monotonic() - self._started, 1e-9)
        return {name: (cpu_seconds(pid) - self._start[name]) / wall for name, pid in self._pids.items()}


async def wait_listening(port: int, process: asyncio.subprocess.Process | None = None, limit_s: float = 30) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`; fail if `process` exits first or time runs out."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process is not None and process.returncode is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing listens on port {port} after {limit_s} s")


@contextlib.asynccontextmanager
async def running(
    command: Sequence[str], port: int, env: dict[str, str], core: int | None, root: Path = ROOT
) -> AsyncIterator[Watched]:
    """Run `command` in `root` (pinned to `core` when given) until the block ends; wait until `port` listens."""
    argv = list(command)
    if core is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(core), *argv]
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=root, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_listening(port, process)
        yield Watched(process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


def server_command(port: int) -> list[str]:
    """Our server on `port`."""
    return [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(port)]


def reference_command(port: int, redis_url: str, channel: str) -> list[str]:
    """bench/reference_server.py on `port`, broadcasting what Redis publishes for `channel` (the broker's pub/sub)."""
    return [
        sys.executable,
        "-m",
        "bench.reference_server",
        "--port",
        str(port),
        "--redis",
        redis_url,
        "--channel",
        f"kiosk:ev:{channel}",
    ]
