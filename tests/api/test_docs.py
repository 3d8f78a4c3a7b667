"""The OpenAPI document, Swagger UI and ReDoc: complete, valid, and served without any CDN."""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from typing import Any, get_args

import httpx
import pytest
from pydantic import BaseModel, Field

from persistence.database import Database
from server.api.docs import STATIC_DIR
from server.api.openapi import openapi_document
from server.api.routing import ApiRouter, Call
from server.app import API_ROUTERS, build_services, create_app
from server.auth.permissions import Permission
from server.errors import HTTP_STATUS, ErrorCode
from server.settings import Settings

PREFIX = "/api/v1"


@pytest.fixture
async def docs_client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose database is never touched: these pages need none."""
    settings = Settings(_env_file=None, ENVIRONMENT="test")
    services = build_services(settings, db=Database.from_url("sqlite+aiosqlite:///:memory:"))
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await services.close()


@pytest.fixture
async def document(docs_client: httpx.AsyncClient) -> dict[str, Any]:
    """The served OpenAPI document."""
    response = await docs_client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), f"{ref} is not a local reference"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


async def test_every_declared_route_is_documented_with_security_and_errors(document: dict[str, Any]) -> None:
    """Each operation of every router appears once, with its tag, security, success and error responses."""
    declared = [op for router in API_ROUTERS for op in router.operations]
    documented = [(path, method) for path, item in document["paths"].items() for method in item]
    assert len(documented) == len(declared)
    for op in declared:
        path = PREFIX + re.sub(r"\{(\w+):\w+\}", r"{\1}", op.path)  # Starlette's `{id:int}` is `{id}` in OpenAPI
        operation = document["paths"][path][op.method.lower()]
        where = f"{op.method} {op.path}"
        assert operation["summary"] == op.summary, where
        assert operation["tags"] == [op.tag], where
        responses = operation["responses"]
        assert any(status.startswith("2") for status in responses), where
        expected = {HTTP_STATUS[code] for code in op.errors}
        if op.public:
            assert operation["security"] == [], where
        else:
            assert {"bearerAuth": []} in operation["security"], where
            assert {"oauth2Password": []} in operation["security"], where
            expected.add(401)
        if op.permission is not None:
            expected.add(403)
            assert f"`{op.permission}`" in operation["description"], where
        if op.body is not None or op.query is not None:
            expected.add(422)
        assert expected <= {int(status) for status in responses}, where
        for status in expected:
            assert responses[str(status)]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }, where


async def test_every_reference_resolves(document: dict[str, Any]) -> None:
    """No `$ref` in the document points at a schema that is not there."""
    refs = set(_refs(document))
    assert "#/components/schemas/Error" in refs
    for ref in refs:
        _resolve(document, ref)


async def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    """The document passes the OpenAPI 3.1 specification validator."""
    validator = pytest.importorskip("openapi_spec_validator")
    assert document["openapi"].startswith("3.1.")
    validator.validate(document)


async def test_document_describes_the_api_and_how_to_authorize(document: dict[str, Any]) -> None:
    """Info names the project and the device protocol; Swagger UI can log in with the password flow."""
    assert document["info"]["title"] == "KIOSK Application"
    assert "docs/protocol.md" in document["info"]["description"]
    assert "permission" in document["info"]["description"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["oauth2Password"]["flows"]["password"]["tokenUrl"] == f"{PREFIX}/auth/login"
    error = _resolve(document, "#/components/schemas/Error")
    assert isinstance(error, dict) and error["required"] == ["error"]
    assert {tag["name"] for tag in document["tags"]} >= {"auth"}


class Colour(enum.StrEnum):
    """A filter value of the test route."""

    RED = "red"
    BLUE = "blue"


class PaintQuery(BaseModel):
    """Filters of the test route."""

    colour: Colour | None = Field(default=None, description="only this colour")
    limit: int = Field(default=10, ge=1, description="how many")
    shade: str


class PaintIn(BaseModel):
    """Body of the test route."""

    name: str


class PaintOut(BaseModel):
    """Response of the test route."""

    id: int


def test_generator_turns_a_declaration_into_parameters_bodies_and_responses() -> None:
    """Path and query parameters, JSON and form bodies, status codes and every error code are written out."""
    router = ApiRouter("paint")

    @router.post(
        "/walls/{wall_id}/paint",
        "Paint a wall",
        permission=Permission.MENU_WRITE,
        body=PaintIn,
        query=PaintQuery,
        response=PaintOut,
        status_code=201,
        form=True,
        errors=get_args(ErrorCode),
    )
    async def paint(call: Call[PaintIn, PaintQuery]) -> PaintOut:
        """Paint it."""
        return PaintOut(id=1)

    @router.delete("/walls/{wall_id:int}", "Remove a wall", public=True)
    async def remove(call: Call[None, None]) -> None:
        """Take it down."""

    document = openapi_document(Settings(_env_file=None, API_V1_STR="/v9"), [router])
    post = document["paths"]["/v9/walls/{wall_id}/paint"]["post"]
    assert post["description"] == "Paint it.\n\n**Permission:** `menu:write`."
    parameters = {parameter["name"]: parameter for parameter in post["parameters"]}
    assert parameters["wall_id"] == {"name": "wall_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    assert parameters["colour"]["schema"] == {"$ref": "#/components/schemas/Colour"}
    assert parameters["colour"]["description"] == "only this colour"
    assert parameters["colour"]["required"] is False
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "default": 10}
    assert parameters["shade"]["required"] is True
    assert document["components"]["schemas"]["Colour"]["enum"] == ["red", "blue"]
    assert "PaintQuery" not in document["components"]["schemas"]
    assert set(post["requestBody"]["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaintOut"
    }
    assert set(post["responses"]) == {"201"} | {str(status) for status in HTTP_STATUS.values()}
    assert "`terminal_busy`" in post["responses"]["409"]["description"]

    delete = document["paths"]["/v9/walls/{wall_id}"]["delete"]
    assert delete["security"] == []
    assert delete["description"] == "Take it down.\n\n**Public:** no token needed."
    assert set(delete["responses"]) == {"204", "404"}
    assert "content" not in delete["responses"]["204"]


def test_generator_refuses_an_unknown_error_code() -> None:
    """A typo in a route's `errors` fails loudly instead of documenting a code that does not exist."""
    router = ApiRouter("paint")

    @router.get("/walls", "List walls", errors=("not_fond",))
    async def walls(call: Call[None, None]) -> None:
        """List them."""

    with pytest.raises(ValueError, match="not_fond"):
        openapi_document(Settings(_env_file=None), [router])


def test_generator_refuses_a_route_declared_twice() -> None:
    """Two declarations of one method and path would shadow each other; the document refuses them."""
    router = ApiRouter("paint")

    @router.get("/walls", "List walls")
    async def walls(call: Call[None, None]) -> None:
        """List them."""

    @router.get("/walls", "List walls again")
    async def walls_again(call: Call[None, None]) -> None:
        """List them again."""

    with pytest.raises(ValueError, match="declared twice"):
        openapi_document(Settings(_env_file=None), [router])


class _Assets(HTMLParser):
    """Collects the URLs a page loads: scripts, stylesheets and the OpenAPI document."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note `src` and `href` of the tags that load something."""
        values = dict(attrs)
        for name in ("src", "href", "spec-url", "data-openapi-url"):
            if values.get(name):
                self.urls.append(str(values[name]))


@pytest.mark.parametrize("page", ["docs", "redoc"])
async def test_doc_pages_load_only_local_assets(docs_client: httpx.AsyncClient, page: str) -> None:
    """Swagger UI and ReDoc pages reference only this server, and every asset they name is served."""
    response = await docs_client.get(f"{PREFIX}/{page}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = _Assets()
    parser.feed(response.text)
    assert f"{PREFIX}/openapi.json" in parser.urls
    assert any(url.endswith(".js") for url in parser.urls), "the page loads no script"
    assert "//" not in response.text, "the page names another host"
    for url in parser.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await docs_client.get(url)
        assert asset.status_code == 200, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"], url
        elif url.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css"), url


def test_vendored_assets_carry_licences_and_no_source_maps() -> None:
    """Each vendored bundle sits beside its licence and a note of its origin; source maps are left out."""
    for folder in ("swagger-ui", "redoc"):
        assert (STATIC_DIR / folder / "LICENSE").is_file()
        assert "drf-spectacular-sidecar" in (STATIC_DIR / folder / "README.txt").read_text()
    assert not list(STATIC_DIR.rglob("*.map"))
