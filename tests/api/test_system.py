"""The routes outside the API: `/`, `/health` with its checks, `/metrics` and the request metrics middleware."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message, Receive, Scope, Send

import server
from persistence.database import Database
from server.app import build_services, create_app
from server.observability.http_metrics import MetricsMiddleware
from server.observability.metrics import Metrics
from server.services import Services
from server.settings import Settings

CLOSED_PORT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/x"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


@asynccontextmanager
async def _client_of(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called `name` in Prometheus text, keyed by their sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_root_names_the_service_and_its_docs(client: httpx.AsyncClient) -> None:
    """`GET /` tells the name, version, environment and where the API docs are."""
    response = await client.get("/")
    assert response.status_code == 200
    assert response.json() == {
        "name": "KIOSK Application",
        "version": server.__version__,
        "environment": "test",
        "docs": "/api/v1/docs",
    }


async def test_health_is_ok_when_database_and_broker_answer(client: httpx.AsyncClient, backend: str) -> None:
    """Both checks pass; the broker is Redis on the production backend and in-process on the embedded one."""
    response = await client.get("/health")
    assert response.status_code == 200, response.text
    broker = "ok" if backend == "postgresql" else "ok (in-process)"
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": broker}}
    assert response.headers["cache-control"] == "no-store"


async def test_health_is_503_naming_the_database_when_it_is_down() -> None:
    """A database that refuses connections makes health 503 with the reason under `database`."""
    settings = Settings(_env_file=None, ENVIRONMENT="test")
    services = build_services(settings, db=Database.from_url(CLOSED_PORT_DATABASE))
    try:
        async with _client_of(services) as client:
            response = await client.get("/health")
    finally:
        await services.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error: ConnectionRefusedError")
    assert body["checks"]["broker"] == "ok (in-process)"


async def test_health_is_503_naming_the_broker_when_redis_is_down(settings: Settings, db: Database) -> None:
    """A Redis that refuses connections makes health 503 with the reason under `broker`; the database is ok."""
    services = build_services(settings.model_copy(update={"REDIS_URL": CLOSED_PORT_REDIS}), db=db)
    try:
        async with _client_of(services) as client:
            response = await client.get("/health")
    finally:
        await services.backend.close()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"].startswith("error: ConnectionError")


async def test_health_gives_up_on_a_hung_broker_after_the_timeout() -> None:
    """A broker that accepts the connection and never answers fails its check in about 2 s, not forever."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    settings = Settings(_env_file=None, ENVIRONMENT="test", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    services = build_services(settings, db=Database.from_url("sqlite+aiosqlite:///:memory:"))
    try:
        async with _client_of(services) as client:
            started = time.perf_counter()
            response = await asyncio.wait_for(client.get("/health"), 10)
            elapsed = time.perf_counter() - started
    finally:
        await services.close()
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "error: no answer within 2 s"}
    assert 1.5 < elapsed < 5


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    """Requests are labelled by route template, never by raw path; unknown paths share one label."""
    await client.get("/api/v1/auth/me")
    await client.get("/api/v1/auth/me")
    await client.get("/api/v1/static/redoc/redoc.standalone.js")
    await client.get("/api/v1/no/such/path/123")
    await client.get("/health")

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    counts = _samples(response.text, "http_requests_total")
    assert counts[(("method", "GET"), ("route", "/api/v1/auth/me"), ("status", "401"))] == 2
    assert counts[(("method", "GET"), ("route", "/api/v1/static"), ("status", "200"))] == 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert counts[(("method", "GET"), ("route", "/health"), ("status", "200"))] == 1
    routes = {dict(labels)["route"] for labels in counts}
    assert not any("123" in route or "redoc.standalone" in route for route in routes)

    durations = _samples(response.text, "http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", "/api/v1/auth/me"))] == 2


async def test_metrics_report_the_database_pool(client: httpx.AsyncClient, backend: str) -> None:
    """The pool gauge is exported on both backends (SQLite in a file keeps a counted pool too)."""
    await client.get("/health")
    pool = _samples((await client.get("/metrics")).text, "db_pool_connections")
    states = {dict(labels)["state"]: value for labels, value in pool.items()}
    assert set(states) == {"checked_out", "idle", "overflow", "size"}
    assert states["size"] >= 1
    assert states["idle"] >= 1  # the health check's connection went back to the pool


def test_a_pool_without_counts_exports_no_pool_series() -> None:
    """An in-memory SQLite database (StaticPool) scrapes cleanly and exports no made-up pool numbers."""
    metrics = Metrics(Database.from_url("sqlite+aiosqlite:///:memory:"))
    text = generate_latest(metrics.registry).decode()
    assert _samples(text, "db_pool_connections") == {}


async def test_middleware_counts_a_failed_request_as_500_and_skips_websockets() -> None:
    """An app that raises is counted as 500 and the error still propagates; a WebSocket scope is not counted."""
    metrics = Metrics(Database.from_url("sqlite+aiosqlite:///:memory:"))
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        if scope["type"] == "http":
            raise RuntimeError("boom")

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    middleware = MetricsMiddleware(app, metrics=metrics)
    with pytest.raises(RuntimeError):
        await middleware({"type": "http", "method": "BREW", "path": "/pot"}, receive, send)
    await middleware({"type": "websocket", "path": "/api/v1/ws"}, receive, send)

    assert seen == ["http", "websocket"]
    counts = _samples(generate_latest(metrics.registry).decode(), "http_requests_total")
    assert counts == {(("method", "OTHER"), ("route", "unmatched"), ("status", "500")): 1}
