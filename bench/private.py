"""Processes a fault benchmark may kill: its own PostgreSQL, its own Redis and restartable server instances.

    async with private_postgres(tmp, port) as pg, private_redis(port) as redis:
        await pg.restart()

PostgreSQL is a new cluster (`initdb` in a temporary folder, `pg_ctl` to start it) and
Redis a `redis-server --save '' --appendonly no`, each on a port of its own: never the
machine's services on 5432 and 6379. Every process is stopped by its pid when the block
ends, by an error, a failure or Ctrl-C as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO

from bench.processes import wait_listening

STOP_WAIT_S = 20.0
START_WAIT_S = 30.0


def private_folder(prefix: str) -> Path:
    """A new temporary folder that PostgreSQL, running as its own user, can reach inside."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"{name} not found (looked in /usr/lib/postgresql/*/bin and PATH)")
    return found[-1]


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


async def _wait_gone(pid: int, child: subprocess.Popen[bytes] | None, limit_s: float = STOP_WAIT_S) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return True  # our child, reaped
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.05)
    return False


async def _stop_pid(pid: int, sig: signal.Signals, child: subprocess.Popen[bytes] | None = None) -> None:
    """Send `sig` to `pid` and wait for it to go; SIGKILL when it will not. `child`: the same, when ours to reap."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not await _wait_gone(pid, child):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await _wait_gone(pid, child)


def _popen(
    argv: Sequence[str], log: IO[bytes], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a process writing to `log` (it returns at once; the caller waits for its port)."""
    return subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


class PrivatePostgres:
    """A PostgreSQL cluster of its own in `folder`, listening on 127.0.0.1:`port` (trust auth, user postgres)."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.data = folder / "pgdata"
        self.log = folder / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/kiosk_bench"

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*_as_postgres(), *argv], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[:1])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    async def init(self) -> None:
        """Create the cluster (once)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        await asyncio.to_thread(
            self._run, _pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"
        )

    async def start(self) -> None:
        """Start the server and wait until it takes connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        await asyncio.to_thread(
            self._run, _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )
        await wait_listening(self.port, limit_s=START_WAIT_S)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    async def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster): open transactions are rolled back, clients disconnected."""
        pid = self.pid
        if pid is not None:
            await _stop_pid(pid, signal.SIGINT)

    async def restart(self) -> None:
        """Stop, then start again."""
        await self.stop()
        await self.start()


@contextlib.asynccontextmanager
async def private_postgres(folder: Path, port: int) -> AsyncIterator[PrivatePostgres]:
    """A new PostgreSQL cluster, running for the block and stopped by pid at its end."""
    postgres = PrivatePostgres(folder, port)
    try:
        await postgres.init()
        await postgres.start()
        yield postgres
    finally:
        await asyncio.shield(postgres.stop())


class PrivateRedis:
    """A `redis-server` of its own on 127.0.0.1:`port`, with nothing saved: a restart loses every key."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start it and wait until it listens."""
        with self.log.open("ab") as log:
            argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            self.process = _popen(argv, log)
        await wait_listening(self.port, limit_s=START_WAIT_S)

    async def stop(self) -> None:
        """Stop it by pid."""
        if self.process is not None and self.process.poll() is None:
            await _stop_pid(self.process.pid, signal.SIGTERM, self.process)

    async def restart(self) -> None:
        """Stop, then start again: empty."""
        await self.stop()
        await self.start()


@contextlib.asynccontextmanager
async def private_redis(port: int, log: Path) -> AsyncIterator[PrivateRedis]:
    """A Redis of its own, running for the block and stopped by pid at its end."""
    redis = PrivateRedis(port, log)
    try:
        await redis.start()
        yield redis
    finally:
        await asyncio.shield(redis.stop())


class Instance:
    """A server process that can be killed and started again on the same port, its output kept in `log`."""

    def __init__(self, command: Sequence[str], port: int, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.command = list(command)
        self.port = port
        self.env = env
        self.cwd = cwd
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Its pid while it runs."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    async def start(self) -> None:
        """Start it and wait until it listens."""
        self._log_file = self.log.open("ab")
        self.process = _popen(self.command, self._log_file, self.env, self.cwd)
        await wait_listening(self.port, limit_s=START_WAIT_S)

    async def kill(self) -> None:
        """SIGKILL: no goodbye to its clients, its pool or Redis."""
        if self.pid is not None:
            await _stop_pid(self.pid, signal.SIGKILL, self.process)

    async def stop(self) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL when that takes too long."""
        if self.pid is not None:
            await _stop_pid(self.pid, signal.SIGTERM, self.process)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@contextlib.asynccontextmanager
async def instances(items: Sequence[Instance]) -> AsyncIterator[Sequence[Instance]]:
    """Start every instance; stop each one by pid when the block ends, however it ends."""
    try:
        for instance in items:
            await instance.start()
        yield items
    finally:
        await asyncio.shield(asyncio.gather(*(instance.stop() for instance in items)))
