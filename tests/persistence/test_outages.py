"""What counts as an outage, from the errors real servers give: PostgreSQL going away, Redis out of reach."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from bench.private import private_folder, private_postgres
from persistence.outages import is_unavailable
from tests.conftest import PG_ADMIN_URL
from tests.live import free_port

LIMIT_S = 30


async def _error_of(url: str, statement: str) -> BaseException:
    """The exception a fresh engine raises running `statement` on `url`."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    except Exception as exc:
        return exc
    finally:
        await engine.dispose()
    raise AssertionError(f"{statement} did not fail")


async def test_a_postgresql_shutting_down_is_unavailable() -> None:
    """New connections to a server shutting down ("the database system is shutting down") are an outage."""
    folder = private_folder("kiosk-outage-")
    try:
        async with asyncio.timeout(LIMIT_S), private_postgres(folder, free_port()) as postgres:
            url = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/postgres"
            holder = create_async_engine(url)
            try:
                async with holder.connect() as held:
                    await held.execute(text("SELECT 1"))
                    # A smart shutdown waits for the held connection and refuses every new one meanwhile.
                    assert postgres.pid is not None
                    os.kill(postgres.pid, signal.SIGTERM)
                    refused = None
                    while refused is None or "shutting down" not in str(refused):
                        await asyncio.sleep(0.05)
                        refused = await _error_of(url, "SELECT 1")
                    assert is_unavailable(refused), repr(refused)
            finally:
                await holder.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_a_connection_terminated_mid_statement_is_unavailable() -> None:
    """A session ended by the server while it runs a statement (as a fast shutdown does) is an outage."""
    url = PG_ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(url)
    try:
        async with asyncio.timeout(LIMIT_S), engine.connect() as victim, engine.connect() as admin:
            pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            sleeping = asyncio.ensure_future(victim.execute(text("SELECT pg_sleep(10)")))
            await asyncio.sleep(0.2)  # let the statement start
            assert (await admin.execute(text(f"SELECT pg_terminate_backend({pid})"))).scalar_one()
            with pytest.raises(Exception) as failed:
                await sleeping
            assert is_unavailable(failed.value), repr(failed.value)
    finally:
        await engine.dispose()


async def test_redis_out_of_reach_is_unavailable() -> None:
    """A Redis nobody answers at is an outage, as a database out of reach is."""
    client = Redis(port=free_port(), socket_connect_timeout=1)
    try:
        with pytest.raises(Exception) as failed:
            await asyncio.wait_for(client.ping(), LIMIT_S)
        assert is_unavailable(failed.value), repr(failed.value)
    finally:
        await client.aclose()


def test_a_connection_left_mid_operation_is_unavailable() -> None:
    """asyncpg's "another operation is in progress", from a connection its restarting server left, is an outage."""
    message = "cannot switch to state 12; another operation (2) is in progress"
    orig = AsyncAdapt_asyncpg_dbapi.InternalClientError(message)
    assert is_unavailable(DBAPIError("SELECT 1", None, orig))


def test_an_ordinary_error_is_no_outage() -> None:
    """A bug is `internal`, not an outage to retry."""
    assert not is_unavailable(ValueError("bad"))
    assert not is_unavailable(KeyError("missing"))
