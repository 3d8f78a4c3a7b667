"""Real server processes for multi-instance tests, sharing a fresh PostgreSQL database and a Redis of their own.

    async with running_cluster(log_dir) as cluster:
        async with DeviceClient(cluster.a.ws, cluster.seed.kiosks[0].token) as kiosk:
            ...

`running_cluster` creates and migrates a database, starts a `redis-server` on a free
port (so that stopping it disturbs no other test), seeds a branch with users, items and
devices, and starts two `python -m server serve` processes (`a` and `b`) with the same
secrets. Whatever happens inside the block, every process is killed when it ends and
the database is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import update

from persistence import migrate
from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import Category, Device, Item, ItemAvailability
from server.app import build_services
from server.settings import Settings
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.live import add_device, free_port, listens_on
from tests.world import build_world

REPO_ROOT = Path(__file__).resolve().parent.parent
# Shared by the processes and the test that mints tokens for them.
JWT_SECRET_KEY = "cluster-test-jwt-secret-0123456789abcdef"
SECRET_KEY = "cluster-test-secret-0123456789abcdef"
SHUTDOWN_GRACE_S = 3.0
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 40


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, or a note that there is none."""
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _open_log(path: Path) -> int:
    """A file descriptor appending to `path`, for a child's stdout and stderr."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


class Child:
    """A child process writing to a log file; `kill` and `stop` are safe to call at any time."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def spawn(self, *argv: str, env: dict[str, str] | None = None) -> None:
        """Start the process; its output goes to the log file."""
        log = _open_log(self.log_path)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv, cwd=REPO_ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
            )
        finally:
            # The child holds its own copy of the descriptor.
            os.close(log)

    @property
    def running(self) -> bool:
        """True while the process has been started and has not exited."""
        return self.process is not None and self.process.returncode is None

    def send_signal(self, sig: signal.Signals) -> None:
        """Send a signal to the running process."""
        assert self.process is not None and self.process.returncode is None, f"{self.name} is not running"
        self.process.send_signal(sig)

    async def wait_exit(self, within_s: float) -> int:
        """Wait for the process to exit; its return code (negative: killed by that signal)."""
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), within_s)

    async def kill(self) -> None:
        """SIGKILL the process if it runs, and reap it."""
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.wait_exit(STOP_TIMEOUT_S)

    async def stop(self) -> None:
        """SIGTERM the process and reap it, killing it if it does not exit in time."""
        if not self.running:
            return
        self.send_signal(signal.SIGTERM)
        try:
            await self.wait_exit(STOP_TIMEOUT_S)
        except TimeoutError:
            await self.kill()

    def log_tail(self) -> str:
        """The end of the process's log, for a failure report."""
        return f"--- {self.name} ({self.log_path}) ---\n{_tail(self.log_path)}"


class RedisServer(Child):
    """A `redis-server` of the test's own, without persistence: a restart loses every key, as a crash would."""

    def __init__(self, port: int, log_path: Path) -> None:
        super().__init__("redis", log_path)
        self.port = port

    @property
    def url(self) -> str:
        """The URL the server processes use."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start redis-server on the port (again, after a stop) and wait until it answers PING."""
        if shutil.which("redis-server") is None:
            raise RuntimeError("the cluster tests need the redis-server binary on PATH (apt-get install redis-server)")
        await self.spawn(
            "redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"
        )
        async with asyncio.timeout(START_TIMEOUT_S):
            while not await self._answers():
                if not self.running:
                    raise RuntimeError(f"redis-server exited at start\n{self.log_tail()}")
                await asyncio.sleep(0.05)

    async def _answers(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return await reader.readline() == b"+PONG\r\n"
        finally:
            writer.close()
            await writer.wait_closed()


class ServerProcess(Child):
    """One `python -m server serve` process listening on its own port."""

    def __init__(self, name: str, port: int, env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, log_path)
        self.port = port
        self.env = env

    @property
    def http(self) -> str:
        """The base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        """The URL of its device WebSocket."""
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"

    async def start(self) -> None:
        """Start the process and wait until `/health` answers 200; on a port taken meanwhile, on a fresh one."""
        for _ in range(3):
            if await self._start_on_port():
                return
            self.port = free_port()
        raise RuntimeError(f"server {self.name} found no free port\n{self.log_tail()}")

    async def _start_on_port(self) -> bool:
        """Start on `self.port`; False when another process holds it, so that the server could not bind it."""
        await self.spawn(
            sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(self.port), env=self.env
        )
        assert self.process is not None
        pid = self.process.pid
        async with httpx.AsyncClient(base_url=self.http, timeout=2) as http, asyncio.timeout(START_TIMEOUT_S):
            while True:
                if not self.running:
                    if "address already in use" in _tail(self.log_path):
                        return False
                    raise RuntimeError(f"server {self.name} exited at start\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    # A server of another test on the port answers too: the answer must come from this one.
                    if (await http.get("/health")).status_code == 200 and listens_on(pid, self.port):
                        return True
                await asyncio.sleep(0.05)


@dataclass(frozen=True)
class SeededDevice:
    """A device of the seed and an access token for it."""

    id: int
    token: str


@dataclass(frozen=True)
class Seed:
    """What the tests start from: one branch with items on offer, its devices and users."""

    branch_id: int
    item_ids: tuple[int, ...]
    kiosks: tuple[SeededDevice, ...]
    terminal: SeededDevice
    kitchen: SeededDevice
    staff_token: str
    manager_headers: dict[str, str]


@dataclass
class Cluster:
    """Two server processes, their Redis, their database, the settings they run with and the seed."""

    a: ServerProcess
    b: ServerProcess
    redis: RedisServer
    db: Database
    settings: Settings
    seed: Seed

    def log_tails(self) -> str:
        """The end of every process's log."""
        return "\n".join(child.log_tail() for child in (self.a, self.b, self.redis))


def cluster_settings(database_url: str, redis_url: str) -> Settings:
    """The settings every process of the cluster runs with (and the seed mints tokens with)."""
    return Settings(
        _env_file=None,
        ENVIRONMENT="test",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        JWT_SECRET_KEY=JWT_SECRET_KEY,
        SECRET_KEY=SECRET_KEY,
        SHUTDOWN_GRACE_S=SHUTDOWN_GRACE_S,
    )


def server_env(settings: Settings) -> dict[str, str]:
    """The environment of a server process with `settings`."""
    env = {key: value for key, value in os.environ.items() if key != "PORT"}
    env.update(
        ENVIRONMENT=settings.ENVIRONMENT,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.REDIS_URL or "",
        JWT_SECRET_KEY=settings.JWT_SECRET_KEY,
        SECRET_KEY=settings.SECRET_KEY,
        SHUTDOWN_GRACE_S=str(settings.SHUTDOWN_GRACE_S),
    )
    return env


async def seed_cluster(settings: Settings, db: Database, *, items: int = 3, kiosks: int = 3) -> Seed:
    """Write the seed with the ORM; tokens are minted with `settings`' secret."""
    services = build_services(settings, db=db, prefix="kiosk")
    try:
        world = await build_world(services)
        branch_id = world.branch_a
        async with db.session() as session:
            category = Category(name="Mains")
            session.add(category)
            await session.flush()
            offered = [Item(category_id=category.id, name=f"Item {n}", price=500 + n * 100) for n in range(items)]
            session.add_all(offered)
            await session.flush()
            session.add_all(
                ItemAvailability(branch_id=branch_id, item_id=item.id, available=True, stock=10) for item in offered
            )
            item_ids = tuple(item.id for item in offered)
        kiosk_devices = [
            SeededDevice(*await add_device(services, branch_id, DeviceKind.KIOSK, f"kiosk {n}")) for n in range(kiosks)
        ]
        kitchen = SeededDevice(*await add_device(services, branch_id, DeviceKind.KITCHEN_DISPLAY))
        # The first kiosk charges through this terminal.
        terminal = SeededDevice(*await add_device(services, branch_id, DeviceKind.PAYMENT_TERMINAL))
        async with db.session() as session:
            await session.execute(
                update(Device).where(Device.id == kiosk_devices[0].id).values(paired_terminal_id=terminal.id)
            )
    finally:
        # Nothing was started; this releases the Redis client it built (the database stays open).
        await services.stop()
        await services.backend.close()
    return Seed(
        branch_id=branch_id,
        item_ids=item_ids,
        kiosks=tuple(kiosk_devices),
        terminal=terminal,
        kitchen=kitchen,
        staff_token=world.staff_a.headers["Authorization"].split()[1],
        manager_headers=world.manager_a.headers,
    )


@asynccontextmanager
async def running_cluster(log_dir: Path) -> AsyncIterator[Cluster]:
    """A migrated, seeded database, a Redis and two healthy server processes; all torn down at the end."""
    database = f"kiosk_cluster_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await create_pg_database(database)
    database_url = pg_url(database)
    db = Database.from_url(database_url)
    redis = RedisServer(free_port(), log_dir / "redis.log")
    servers: list[ServerProcess] = []
    try:
        await migrate.upgrade(database_url)
        await redis.start()
        settings = cluster_settings(database_url, redis.url)
        seed = await seed_cluster(settings, db)
        env = server_env(settings)
        servers = [ServerProcess(name, free_port(), env, log_dir / f"server-{name}.log") for name in ("a", "b")]
        async with asyncio.TaskGroup() as starting:
            for server in servers:
                starting.create_task(server.start())
        yield Cluster(a=servers[0], b=servers[1], redis=redis, db=db, settings=settings, seed=seed)
    finally:
        for child in [*servers, redis]:
            await child.kill()
        await db.dispose()
        await drop_pg_database(database)
