"""Fixtures shared by the whole suite.

Behaviour that touches storage runs twice, once per runtime the server supports:
`sqlite` (the embedded defaults: SQLite file, in-process broker and limits) and
`postgresql` (PostgreSQL and Redis, as in production). The real servers must be
reachable: the suite fails rather than skip them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

import persistence.tables  # noqa: F401
from persistence import migrate
from persistence.base import Base
from persistence.database import Database
from server.app import build_services, create_app
from server.services import Services
from server.settings import Settings
from tests.shop import Shop, build_shop
from tests.world import World, build_world

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster as ClusterClient

    from tests.redis_cluster import RedisCluster

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
# One database per pytest process, so that concurrent runs on one machine never collide.
PG_TEST_DB = f"{os.environ.get('TEST_POSTGRES_DB', 'kiosk_test')}_{os.getpid()}"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BACKENDS = ("sqlite", "postgresql")
REALTIME_KINDS = ("memory", "redis", "cluster")


def pg_url(database: str) -> str:
    """An asyncpg SQLAlchemy URL for a database on the test PostgreSQL server."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def create_pg_database(name: str) -> None:
    """Create (empty) a database on the test server, dropping any old one of that name."""
    try:
        connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is required for the tests and is not reachable at {PG_ADMIN_URL}: {exc}"
        ) from exc
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_pg_database(name: str) -> None:
    """Drop a database of the test server if it exists."""
    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def delete_keys(redis: Redis | ClusterClient, pattern: str) -> int:
    """Delete the keys matching `pattern` (a test's prefix and `:*`); how many there were."""
    # Large pages: the test database holds other runs' keys, and SCAN's default page is 10 keys a round trip.
    keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
    if keys:
        await redis.delete(*keys)
    return len(keys)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for this test session's SQLite files."""
    return tmp_path_factory.mktemp("db")


@pytest.fixture(scope="session")
async def migrated_urls(tmp_root: Path) -> AsyncIterator[dict[str, str]]:
    """A database per backend, migrated to head once per test session."""
    await create_pg_database(PG_TEST_DB)
    urls = {"sqlite": f"sqlite+aiosqlite:///{tmp_root / 'suite.db'}", "postgresql": pg_url(PG_TEST_DB)}
    for url in urls.values():
        await migrate.upgrade(url)
    yield urls
    await drop_pg_database(PG_TEST_DB)


@pytest.fixture(scope="session")
async def redis_client() -> AsyncIterator[Redis]:
    """A client of the test Redis database; the suite fails when Redis is down."""
    client = Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as exc:
        raise RuntimeError(f"Redis is required for the tests and is not reachable at {REDIS_URL}: {exc}") from exc
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RedisCluster]:
    """A three-master Redis Cluster of this test session alone, started the first time a test asks for it."""
    # Imported here: tests.redis_cluster builds on tests.cluster, which imports this module.
    from tests.redis_cluster import running_redis_cluster

    async with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(params=REALTIME_KINDS)
def realtime(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """Each kind of realtime backend in turn and its URL: in process (None), Redis, Redis Cluster.

    Not async, so that the session's cluster can start here, outside the test's event loop.
    """
    kind = str(request.param)
    if kind == "cluster":
        return kind, request.getfixturevalue("redis_cluster").url
    return kind, REDIS_URL if kind == "redis" else None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The runtime a test runs on: `sqlite` (embedded) or `postgresql` (PostgreSQL + Redis)."""
    return str(request.param)


async def empty_database(db: Database) -> None:
    """Delete every row of every table (between tests)."""
    # DELETE, children first, in one round trip: TRUNCATE of every table costs PostgreSQL ~0.4 s a test, DELETE of
    # a test's few rows ~15 ms. Ids are not restarted; no test may count on them.
    # The catalogue's triggers (PostgreSQL) write catalogue_version as its rows go: it is emptied again last.
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)] + ["catalogue_version"]
    deletes = "; ".join(f"DELETE FROM {table}" for table in tables)
    async with db.engine.begin() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        if db.backend == "postgresql":
            await driver.execute(deletes)
        else:
            await driver.executescript(deletes)


@pytest.fixture
async def db(backend: str, migrated_urls: dict[str, str]) -> AsyncIterator[Database]:
    """The backend's database, emptied before the test."""
    database = Database.from_url(migrated_urls[backend])
    await empty_database(database)
    yield database
    await database.dispose()


@pytest.fixture
def settings(backend: str) -> Settings:
    """Settings of the runtime under test (Redis only on the production-like backend)."""
    return Settings(
        _env_file=None,
        ENVIRONMENT="test",
        REDIS_URL=REDIS_URL if backend == "postgresql" else None,
    )


@pytest.fixture
async def services(settings: Settings, db: Database, redis_client: Redis) -> AsyncIterator[Services]:
    """The app's services over the test database, with Redis keys of this test's own."""
    # Other tests (and other test runs) share the Redis server: give this one keys of its own.
    prefix = f"test:{uuid.uuid4()}"
    built = build_services(settings, db=db, prefix=prefix)
    yield built
    await built.stop()
    if built.redis is not None:
        await delete_keys(built.redis, f"{prefix}:*")
    await built.backend.close()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process."""
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def world(services: Services) -> World:
    """Two branches and a user of every role, with their auth headers."""
    return await build_world(services)


@pytest.fixture
async def shop(services: Services, world: World) -> Shop:
    """Branch a set up to sell: menu with options and stock, a known customer, its devices and staff."""
    return await build_shop(services, world)
