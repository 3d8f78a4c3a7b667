"""`/apps/...`: the browser apps' static files, with module-friendly content types, no listings, no escape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from persistence.database import Database
from server.api.apps import APPS_DIR, resolve
from server.app import build_services, create_app
from server.settings import Settings


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose database is never touched: static files need none."""
    settings = Settings(_env_file=None, ENVIRONMENT="test")
    services = build_services(settings, db=Database.from_url("sqlite+aiosqlite:///:memory:"))
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await services.close()


async def test_an_apps_folder_serves_its_index_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/apps/terminal/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == (APPS_DIR / "terminal" / "index.html").read_text(encoding="utf-8")
    assert response.headers["cache-control"] == "no-cache"


async def test_the_folder_without_its_slash_moves_to_it(http: httpx.AsyncClient) -> None:
    response = await http.get("/apps/terminal")
    assert response.status_code == 308
    assert response.headers["location"] == "/apps/terminal/"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("shared/client.js", "text/javascript; charset=utf-8"), ("shared/ui.css", "text/css; charset=utf-8")],
)
async def test_scripts_and_styles_have_their_content_types(
    http: httpx.AsyncClient, path: str, content_type: str
) -> None:
    response = await http.get(f"/apps/{path}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


@pytest.mark.parametrize("path", ["shared/", "nothing/", "shared/missing.js", "../server/app.py", "%2e%2e/README.md"])
async def test_folders_are_not_listed_and_nothing_else_is_reachable(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(f"/apps/{path}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_the_api_still_answers_beside_the_apps(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/openapi.json")).status_code == 200


def test_paths_that_leave_the_folder_or_are_hidden_resolve_to_nothing(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "index.html").write_text("<p>hi</p>")
    (tmp_path / "app" / ".secret.txt").write_text("no")
    (tmp_path / "app" / "run.py").write_text("no")
    (tmp_path / "outside.html").write_text("no")
    root = tmp_path / "app"
    assert resolve(root, "") == root / "index.html"
    assert resolve(root, "index.html") == root / "index.html"
    assert resolve(root, ".secret.txt") is None
    assert resolve(root, "run.py") is None
    assert resolve(root, "../outside.html") is None
