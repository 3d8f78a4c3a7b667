"""Hostile REST input is refused as `invalid` naming the field, never a 500; the document and behaviour agree."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from persistence.enums import DeviceKind
from persistence.tables import Device
from server.services import Services
from tests.world import World

API = "/api/v1"
LIMIT_S = 10
HUGE = 3_000_000_000  # wider than the 32-bit columns
HUGER = "9223372036854775808"  # wider than a 64-bit integer


async def _call(
    client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    return await asyncio.wait_for(client.request(method, API + url, headers=headers, **kwargs), timeout=LIMIT_S)


def _fields(response: httpx.Response) -> set[str]:
    """The fields an `invalid` answer names."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid", error
    return {entry["field"] for entry in error["details"]["errors"]}


async def _device(services: Services, branch_id: int) -> int:
    async with services.db.session() as session:
        device = Device(branch_id=branch_id, kind=DeviceKind.KIOSK, name="Kiosk", secret_hash="-")
        session.add(device)
        await session.flush()
        return device.id


async def test_a_device_id_wider_than_its_column_is_invalid_without_a_login(client: httpx.AsyncClient) -> None:
    """`POST /auth/device` with a device id beyond 32 bits is `invalid` naming device_id."""
    response = await _call(client, "POST", "/auth/device", json={"device_id": HUGE, "secret": "x"})
    assert _fields(response) == {"device_id"}


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/orders", {"offset": HUGER}, "offset"),
        ("/orders", {"number": HUGER}, "number"),
        ("/payments", {"offset": str(HUGE)}, "offset"),
        ("/devices", {"branch_id": str(HUGE)}, "branch_id"),
        ("/users", {"branch_id": "-" + HUGER}, "branch_id"),
        ("/items", {"category_id": HUGER}, "category_id"),
        ("/customers", {"offset": HUGER}, "offset"),
    ],
)
async def test_query_integers_wider_than_their_column_are_invalid(
    client: httpx.AsyncClient, world: World, url: str, params: dict[str, str], field: str
) -> None:
    """Ids, offsets and filters in a query string beyond 32 bits are `invalid` naming the parameter."""
    assert _fields(await _call(client, "GET", url, world.admin.headers, params=params)) == {field}


async def test_body_integers_wider_than_their_column_are_invalid(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Role, branch, terminal and option-count integers beyond 32 bits in a body are `invalid` naming the field."""
    headers = world.admin.headers
    kiosk = await _device(services, world.branch_a)
    user = {"username": "someone", "password": "long enough password", "role_id": world.roles["staff"]}
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/users", {**user, "role_id": HUGE}, "role_id"),
        ("POST", "/users", {**user, "branch_id": HUGE}, "branch_id"),
        ("PATCH", f"/users/{world.staff_a.id}", {"role_id": HUGE}, "role_id"),
        ("POST", "/devices", {"branch_id": HUGE, "kind": "kiosk", "name": "K"}, "branch_id"),
        ("POST", f"/devices/{kiosk}/pair", {"terminal_id": HUGE}, "terminal_id"),
        ("POST", "/items/1/stock", {"branch_id": -HUGE, "mode": "set", "quantity": 1}, "branch_id"),
        ("POST", "/categories", {"name": "Soups", "position": HUGE}, "position"),
    ]
    for method, url, body, field in cases:
        assert field in _fields(await _call(client, method, url, headers, json=body)), (method, url, body)


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "field"),
    [
        ("GET", "/customers", {"params": {"q": "a\x00b"}}, "q"),
        ("GET", "/items", {"params": {"q": "a\x00b"}}, "q"),
        ("POST", "/categories", {"json": {"name": "Soups\x00"}}, "name"),
        ("POST", "/customers", {"json": {"phone": "+4930123456", "name": "A\x00"}}, "name"),
        (
            "POST",
            "/branches",
            {"json": {"name": "B", "currency": "EUR", "timezone": "UTC", "address": "\x00"}},
            "address",
        ),
    ],
)
async def test_a_nul_character_in_text_is_invalid(
    client: httpx.AsyncClient, world: World, method: str, url: str, kwargs: dict[str, Any], field: str
) -> None:
    """Text holding a NUL character (which PostgreSQL cannot store) is `invalid` naming the field."""
    assert _fields(await _call(client, method, url, world.admin.headers, **kwargs)) == {field}


async def test_a_nul_in_a_device_name_is_invalid(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """Renaming a device to text holding NUL is `invalid` naming `name`."""
    device = await _device(services, world.branch_a)
    response = await _call(client, "PATCH", f"/devices/{device}", world.admin.headers, json={"name": "K\x00"})
    assert _fields(response) == {"name"}


async def test_a_nul_in_the_login_name_is_invalid_without_a_login(client: httpx.AsyncClient) -> None:
    """`POST /auth/login` with NUL in the username is `invalid` naming username, as JSON and as a form."""
    body = {"username": "a\x00b", "password": "whatever"}
    assert _fields(await _call(client, "POST", "/auth/login", json=body)) == {"username"}
    assert _fields(await _call(client, "POST", "/auth/login", data=body)) == {"username"}


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-13-01T00:00:00Z", "2026-11-26T12:00:00"])
async def test_created_to_takes_only_an_iso_date_time_with_a_zone(
    client: httpx.AsyncClient, world: World, value: str
) -> None:
    """`created_to` refuses numbers (read as Unix time before) and times without a zone."""
    response = await _call(client, "GET", "/orders", world.admin.headers, params={"created_to": value})
    assert _fields(response) == {"created_to"}


async def test_business_date_takes_only_an_iso_date(client: httpx.AsyncClient, world: World) -> None:
    """`business_date=0` is `invalid` instead of 1970-01-01; an ISO date is taken."""
    response = await _call(client, "GET", "/orders", world.admin.headers, params={"business_date": "0"})
    assert _fields(response) == {"business_date"}
    ok = await _call(client, "GET", "/orders", world.admin.headers, params={"business_date": "2026-11-26"})
    assert ok.status_code == 200


async def test_a_patch_without_a_body_is_invalid(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """A PATCH (or POST) whose body is empty is `invalid`: the document marks every body as required."""
    device = await _device(services, world.branch_a)
    response = await _call(client, "PATCH", f"/devices/{device}", world.admin.headers)
    assert _fields(response) == {"body"}
    assert _fields(await _call(client, "POST", "/categories", world.admin.headers)) == {"body"}


async def test_a_wrong_method_is_405_with_allow(client: httpx.AsyncClient, world: World) -> None:
    """A method a path does not take answers 405 with `Allow` naming the ones it does."""
    response = await _call(client, "PUT", "/items/1", world.admin.headers, json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"
    assert response.json()["error"]["code"] == "invalid"
    assert (await _call(client, "DELETE", "/auth/me", world.admin.headers)).headers["allow"] == "GET, HEAD"


async def test_only_clearable_patch_fields_are_nullable_in_the_document(client: httpx.AsyncClient) -> None:
    """The OpenAPI schema of a PATCH body allows null exactly where the route takes null (clears the field)."""
    document = (await asyncio.wait_for(client.get(f"{API}/openapi.json"), timeout=LIMIT_S)).json()
    properties = document["components"]["schemas"]["UserUpdate"]["properties"]

    def nullable(schema: dict[str, Any]) -> bool:
        return {"type": "null"} in schema.get("anyOf", []) or schema.get("type") == "null"

    assert {name for name, schema in properties.items() if nullable(schema)} == {"full_name", "email", "branch_id"}


async def test_documented_nullable_patch_fields_take_null(client: httpx.AsyncClient, world: World) -> None:
    """Null clears a clearable field, and a non-nullable one refuses it naming the field."""
    url = f"/users/{world.staff_a.id}"
    cleared = await _call(client, "PATCH", url, world.admin.headers, json={"email": None, "full_name": None})
    assert cleared.status_code == 200, cleared.text
    assert _fields(await _call(client, "PATCH", url, world.admin.headers, json={"is_active": None})) == {"is_active"}


async def test_another_branchs_things_are_not_found_as_if_they_did_not_exist(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Branch b's staff asking for branch a's device, user or branch get the same 404 as for a missing id."""
    device = await _device(services, world.branch_a)
    headers = world.manager_b.headers
    for url, missing in (
        (f"/devices/{device}", "/devices/999999"),
        (f"/users/{world.staff_a.id}", "/users/999999"),
        (f"/users/{world.admin.id}", "/users/999999"),
        (f"/branches/{world.branch_a}", "/branches/999999"),
    ):
        hidden, absent = await _call(client, "GET", url, headers), await _call(client, "GET", missing, headers)
        assert (hidden.status_code, absent.status_code) == (404, 404), (url, hidden.text)
        assert hidden.json()["error"]["code"] == absent.json()["error"]["code"] == "not_found"
        assert "branch_id" not in hidden.text
    for method, url in (("PATCH", f"/devices/{device}"), ("POST", f"/devices/{device}/disable")):
        kwargs: dict[str, Any] = {"json": {"name": "Mine"}} if method == "PATCH" else {}
        assert (await _call(client, method, url, headers, **kwargs)).status_code == 404
