"""The one path every REST request takes: error shapes for bad input, unknown routes, crashes and outages."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from persistence.database import Database
from server.api.routing import ApiRouter, Call
from server.app import build_services, create_app
from server.services import Services
from server.settings import Settings


class Echo(BaseModel):
    """A body to validate."""

    n: int


def _app_with(router: ApiRouter, services: Services) -> Starlette:
    app = Starlette(routes=list(router.routes("/t")))
    app.state.services = services
    return app


async def _request(app: Starlette, method: str, url: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.request(method, url, **kwargs)  # type: ignore[arg-type]


async def test_unknown_path_and_wrong_method_use_the_error_shape(client: httpx.AsyncClient) -> None:
    """404 and 405 answer like every other error."""
    missing = await client.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    wrong = await client.delete("/api/v1/auth/login")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "invalid"
    # Outside the API's routes too (Starlette's own 405), the answer names the methods the path takes.
    health = await client.post("/health")
    assert (health.status_code, health.json()["error"]["code"]) == (405, "invalid")
    assert set(health.headers["allow"].replace(" ", "").split(",")) >= {"GET"}


@pytest.mark.parametrize("depth", [40, 3000])
async def test_a_body_nesting_too_deep_is_invalid(client: httpx.AsyncClient, depth: int) -> None:
    """JSON nesting deeper than 32 levels is `invalid`, also when it is deep enough to exhaust the decoder."""
    body = '{"username": ' + "[" * depth + "]" * depth + ', "password": "x"}'
    response = await client.post("/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid")
    assert "nests deeper than 32 levels" in response.json()["error"]["message"]


async def test_a_body_that_is_not_json_is_invalid(client: httpx.AsyncClient) -> None:
    """Broken JSON is `invalid`, not a crash."""
    response = await client.post("/api/v1/auth/login", content=b"{not json")
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid")


async def test_a_crash_is_internal_and_leaks_nothing(services: Services) -> None:
    """An unexpected exception becomes `internal` without its message."""
    router = ApiRouter("t")

    @router.post("/boom", "Boom", public=True, body=Echo)
    async def boom(call: Call[Echo, None]) -> None:
        raise RuntimeError("secret detail")

    response = await _request(_app_with(router, services), "POST", "/t/boom", json={"n": 1})
    assert response.status_code == 500
    assert response.json()["error"] == {"code": "internal", "message": "internal error", "details": {}}
    assert "secret" not in response.text


async def test_query_validation_names_the_field(services: Services) -> None:
    """A bad query parameter is `invalid` with its name."""

    class Query(BaseModel):
        limit: int = 10

    router = ApiRouter("t")

    @router.get("/q", "Q", public=True, query=Query)
    async def q(call: Call[None, Query]) -> Echo:
        return Echo(n=call.query.limit)

    app = _app_with(router, services)
    assert (await _request(app, "GET", "/t/q?limit=3")).json() == {"n": 3}
    bad = await _request(app, "GET", "/t/q?limit=many")
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["errors"][0]["field"] == "limit"


async def _login_code(services: Services) -> tuple[int, str]:
    """A login request against an app on `services`: its status and error code."""
    app = create_app(services=services)
    response = await _request(app, "POST", "/api/v1/auth/login", json={"username": "a", "password": "b"})
    return response.status_code, response.json()["error"]["code"]


def _services(db: Database) -> Services:
    return build_services(Settings(_env_file=None, ENVIRONMENT="test"), db=db)


async def test_a_pool_that_gives_no_connection_in_time_answers_unavailable(migrated_urls: dict[str, str]) -> None:
    """Every pooled connection busy past the pool's timeout: 503 `unavailable` (nothing was changed), not `internal`.

    SQLAlchemy's pool timeout is not the built-in TimeoutError."""
    engine = create_async_engine(migrated_urls["postgresql"], pool_size=1, max_overflow=0, pool_timeout=0.2)
    busy = _services(Database(engine))
    try:
        # The pool's only connection, held; given back before the pool is closed.
        async with engine.connect():
            assert await _login_code(busy) == (503, "unavailable")
    finally:
        await busy.close()


async def test_database_down_is_unavailable() -> None:
    """With the database unreachable a request gets 503 `unavailable`."""
    down = _services(Database.from_url("postgresql+asyncpg://postgres@127.0.0.1:1/none"))
    try:
        assert await _login_code(down) == (503, "unavailable")
    finally:
        await down.close()
