"""REST branches: CRUD, validation, branch scoping, the currency rule, service modes and tax rates."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from persistence.enums import OrderStatus
from persistence.tables import Order, Role
from server.services import Services
from tests.world import World, add_user, login_as

BRANCHES = "/api/v1/branches"
TAX_CATEGORIES = "/api/v1/tax-categories"


def _fields(response: httpx.Response) -> set[str]:
    error = response.json()["error"]
    assert error["code"] == "invalid", error
    return {item["field"] for item in error["details"]["errors"]}


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(BRANCHES, headers=headers, json={"currency": "EUR", "timezone": "Europe/Paris", **body})


async def _tax_categories(client: httpx.AsyncClient, world: World, *names: str) -> list[int]:
    ids = []
    for name in names:
        response = await client.post(TAX_CATEGORIES, json={"name": name}, headers=world.admin.headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def _rate(tax_category_id: int, mode: str, rate_bp: int) -> dict[str, Any]:
    return {"tax_category_id": tax_category_id, "service_mode": mode, "rate_bp": rate_bp}


async def _place_order(services: Services, branch_id: int) -> None:
    async with services.db.session() as session:
        session.add(
            Order(
                branch_id=branch_id,
                number=1,
                business_date=date(2026, 11, 26),
                status=OrderStatus.AWAITING_PAYMENT,
                currency="EUR",
                subtotal=900,
                tax=100,
                total=1000,
            )
        )


async def test_admin_lists_every_branch_by_id(client: httpx.AsyncClient, world: World) -> None:
    """An admin sees both branches with their settings, in id order."""
    response = await client.get(BRANCHES, headers=world.admin.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 2
    alpha, beta = page["items"]
    assert (alpha["id"], alpha["name"], alpha["currency"], alpha["timezone"]) == (
        world.branch_a,
        "Alpha",
        "EUR",
        "Europe/Berlin",
    )
    assert (alpha["tax_rate_bp"], alpha["address"], alpha["is_active"]) == (0, None, True)
    assert (alpha["service_modes"], alpha["tax_rates"]) == (["eat_in", "takeaway"], [])
    assert beta["name"] == "Beta"


async def test_branch_scoped_users_list_only_their_branch(client: httpx.AsyncClient, world: World) -> None:
    """Managers and staff of branch b see branch b alone."""
    for actor in (world.manager_b, world.staff_b):
        response = await client.get(BRANCHES, headers=actor.headers)
        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [world.branch_b]
        assert response.json()["total"] == 1


async def test_list_filters_by_state_and_text(client: httpx.AsyncClient, world: World) -> None:
    """is_active and q (any case, name or address) narrow the list."""
    created = await _create(client, world.admin.headers, name="Gamma", address="1 Harbour Road")
    assert created.status_code == 201, created.text
    await client.patch(f"{BRANCHES}/{world.branch_b}", headers=world.admin.headers, json={"is_active": False})

    async def names(**params: Any) -> list[str]:
        response = await client.get(BRANCHES, headers=world.admin.headers, params=params)
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["items"]]

    assert await names(is_active="true") == ["Alpha", "Gamma"]
    assert await names(is_active="false") == ["Beta"]
    assert await names(q="ALP") == ["Alpha"]
    assert await names(q="harbour") == ["Gamma"]
    assert await names(q="%") == []


async def test_list_pages_with_limit_offset_and_total(client: httpx.AsyncClient, world: World) -> None:
    """limit and offset slice the id order; total counts every branch."""
    for name in ("Gamma", "Delta", "Epsilon"):
        assert (await _create(client, world.admin.headers, name=name)).status_code == 201
    response = await client.get(BRANCHES, headers=world.admin.headers, params={"limit": 2, "offset": 2})
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [item["name"] for item in page["items"]] == ["Gamma", "Delta"]
    too_many = await client.get(BRANCHES, headers=world.admin.headers, params={"limit": 501})
    assert _fields(too_many) == {"limit"}


async def test_read_own_branch_but_not_another(client: httpx.AsyncClient, world: World) -> None:
    """Staff and managers read their branch and get 404 for the other one, as for a branch that does not exist."""
    assert (await client.get(f"{BRANCHES}/{world.branch_a}", headers=world.staff_a.headers)).status_code == 200
    for actor in (world.staff_b, world.manager_b):
        response = await client.get(f"{BRANCHES}/{world.branch_a}", headers=actor.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_missing_branch_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    """An unknown id is `not_found` on read and update."""
    for response in (
        await client.get(f"{BRANCHES}/9999", headers=world.admin.headers),
        await client.patch(f"{BRANCHES}/9999", headers=world.admin.headers, json={"address": "x"}),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_there_is_no_delete(client: httpx.AsyncClient, world: World) -> None:
    """Branches are disabled, never deleted: DELETE is not a route."""
    response = await client.delete(f"{BRANCHES}/{world.branch_a}", headers=world.admin.headers)
    assert response.status_code == 405
    assert (await client.get(f"{BRANCHES}/{world.branch_a}", headers=world.admin.headers)).status_code == 200


async def test_managers_and_staff_may_not_write_branches(client: httpx.AsyncClient, world: World) -> None:
    """Without branches:write, creating or updating any branch, their own included, is 403."""
    for actor in (world.manager_a, world.staff_a, world.manager_b):
        assert (await _create(client, actor.headers, name="Rogue")).status_code == 403
        response = await client.patch(f"{BRANCHES}/{world.branch_a}", headers=actor.headers, json={"name": "Mine"})
        assert response.status_code == 403
    assert (await client.get(f"{BRANCHES}/{world.branch_a}", headers=world.admin.headers)).json()["name"] == "Alpha"


async def test_branch_bound_writer_changes_only_its_own_branch(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A branch-bound user with branches:write may edit its branch, not another, and may not open branches."""
    async with services.db.session() as session:
        role = Role(name="branch-admin", permissions=["branches:read", "branches:write"])
        session.add(role)
        await session.flush()
        role_id = role.id
    headers = await login_as(services, await add_user(services.db, "local.admin", role_id, world.branch_a))
    own = await client.patch(f"{BRANCHES}/{world.branch_a}", headers=headers, json={"address": "2 Main St"})
    assert own.status_code == 200 and own.json()["address"] == "2 Main St"
    other = await client.patch(f"{BRANCHES}/{world.branch_b}", headers=headers, json={"address": "Stolen"})
    assert other.status_code == 404  # another branch is not found, as if it did not exist
    assert (await _create(client, headers, name="Outpost")).status_code == 403


async def test_admin_creates_a_branch(client: httpx.AsyncClient, world: World) -> None:
    """A new branch is active and reads back with everything it was given."""
    response = await client.post(
        BRANCHES,
        headers=world.admin.headers,
        json={
            "name": " Gamma ",
            "currency": "GBP",
            "timezone": "Europe/London",
            "tax_rate_bp": 2000,
            "address": "1 High St",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["currency"], body["timezone"]) == ("Gamma", "GBP", "Europe/London")
    assert (body["tax_rate_bp"], body["address"], body["is_active"]) == (2000, "1 High St", True)
    assert (await client.get(f"{BRANCHES}/{body['id']}", headers=world.admin.headers)).json() == body


async def test_create_validation_errors_name_the_fields(client: httpx.AsyncClient, world: World) -> None:
    """Bad currency, unknown zone, tax rate out of range, blank name and unknown fields are each named."""
    response = await client.post(
        BRANCHES,
        headers=world.admin.headers,
        json={"name": " ", "currency": "eur", "timezone": "Mars/Olympus", "tax_rate_bp": 10001, "vat": 20},
    )
    assert response.status_code == 422
    assert _fields(response) == {"name", "currency", "timezone", "tax_rate_bp", "vat"}
    zone_error = next(e for e in response.json()["error"]["details"]["errors"] if e["field"] == "timezone")
    assert zone_error["type"] == "unknown_timezone" and "Mars/Olympus" in zone_error["message"]
    for zone in ("../../etc/passwd", "", "Europe", "europe/berlin"):
        assert _fields(await _create(client, world.admin.headers, name="Zone", timezone=zone)) == {"timezone"}
    for currency in ("EU", "EURO", "E1R"):
        assert _fields(await _create(client, world.admin.headers, name="Cur", currency=currency)) == {"currency"}
    negative = await _create(client, world.admin.headers, name="Tax", tax_rate_bp=-1)
    assert _fields(negative) == {"tax_rate_bp"}


async def test_duplicate_branch_name_is_a_conflict(client: httpx.AsyncClient, world: World) -> None:
    """A name already taken, in any case, is `conflict` on create and on rename; keeping one's own name is fine."""
    assert (await _create(client, world.admin.headers, name="alpha")).status_code == 409
    url = f"{BRANCHES}/{world.branch_b}"
    assert (await client.patch(url, headers=world.admin.headers, json={"name": "ALPHA"})).status_code == 409
    assert (await client.patch(url, headers=world.admin.headers, json={"name": "Beta"})).status_code == 200


async def test_update_changes_only_the_fields_sent(client: httpx.AsyncClient, world: World) -> None:
    """Fields left out keep their values; null clears the address but is `invalid` on required fields."""
    url = f"{BRANCHES}/{world.branch_a}"
    response = await client.patch(
        url, headers=world.admin.headers, json={"timezone": "Asia/Tokyo", "tax_rate_bp": 800, "address": "Dock 4"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["currency"], body["timezone"], body["tax_rate_bp"]) == (
        "Alpha",
        "EUR",
        "Asia/Tokyo",
        800,
    )
    cleared = await client.patch(url, headers=world.admin.headers, json={"address": None})
    assert cleared.json()["address"] is None and cleared.json()["timezone"] == "Asia/Tokyo"
    nulls = await client.patch(url, headers=world.admin.headers, json={"currency": None, "is_active": None})
    assert _fields(nulls) == {"currency", "is_active"}
    bad_zone = await client.patch(url, headers=world.admin.headers, json={"timezone": "Nowhere/Land"})
    assert _fields(bad_zone) == {"timezone"}


async def test_disable_a_branch(client: httpx.AsyncClient, world: World) -> None:
    """PATCH is_active false disables a branch: admins still read it, its own users are locked out."""
    url = f"{BRANCHES}/{world.branch_b}"
    response = await client.patch(url, headers=world.admin.headers, json={"is_active": False})
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert (await client.get(url, headers=world.admin.headers)).json()["is_active"] is False
    assert (await client.get(url, headers=world.manager_b.headers)).status_code == 403


async def test_currency_is_fixed_once_the_branch_has_orders(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A currency change is `conflict` on a branch with orders and allowed on one without."""
    await _place_order(services, world.branch_a)
    url_a = f"{BRANCHES}/{world.branch_a}"
    refused = await client.patch(url_a, headers=world.admin.headers, json={"currency": "CHF"})
    assert refused.status_code == 409
    assert refused.json()["error"]["details"] == {"field": "currency"}
    same = await client.patch(url_a, headers=world.admin.headers, json={"currency": "EUR", "address": "Here"})
    assert same.status_code == 200
    assert (await client.get(url_a, headers=world.admin.headers)).json()["currency"] == "EUR"
    changed = await client.patch(f"{BRANCHES}/{world.branch_b}", headers=world.admin.headers, json={"currency": "CAD"})
    assert changed.status_code == 200 and changed.json()["currency"] == "CAD"


async def test_a_new_branch_offers_both_modes_and_no_rates_of_its_own(client: httpx.AsyncClient, world: World) -> None:
    """Left out, service_modes is eat-in then takeaway and tax_rates is empty; given, both read back as sent."""
    plain = await _create(client, world.admin.headers, name="Plain")
    assert (plain.json()["service_modes"], plain.json()["tax_rates"]) == (["eat_in", "takeaway"], [])
    food, drinks = await _tax_categories(client, world, "Food", "Drinks")
    rates = [_rate(food, "eat_in", 1900), _rate(food, "takeaway", 700), _rate(drinks, "takeaway", 1900)]
    rated = await _create(client, world.admin.headers, name="Rated", service_modes=["takeaway"], tax_rates=rates)
    assert rated.status_code == 201, rated.text
    assert (rated.json()["service_modes"], rated.json()["tax_rates"]) == (["takeaway"], rates)
    read = (await client.get(f"{BRANCHES}/{rated.json()['id']}", headers=world.admin.headers)).json()
    assert (read["service_modes"], read["tax_rates"]) == (["takeaway"], rates)


async def test_patch_replaces_modes_and_rates_whole(client: httpx.AsyncClient, world: World) -> None:
    """service_modes and tax_rates, when sent, are the complete new lists; left out, they stay; null is refused."""
    (food,) = await _tax_categories(client, world, "Food")
    url = f"{BRANCHES}/{world.branch_a}"
    first = [_rate(food, "eat_in", 1900), _rate(food, "takeaway", 700)]
    body = {"service_modes": ["takeaway", "eat_in"], "tax_rates": first}
    response = await client.patch(url, json=body, headers=world.admin.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["service_modes"], response.json()["tax_rates"]) == (["takeaway", "eat_in"], first)
    kept = await client.patch(url, json={"tax_rate_bp": 1000}, headers=world.admin.headers)
    assert (kept.json()["service_modes"], kept.json()["tax_rates"]) == (["takeaway", "eat_in"], first)
    replaced = await client.patch(url, json={"tax_rates": first[1:]}, headers=world.admin.headers)
    assert replaced.json()["tax_rates"] == first[1:]
    emptied = await client.patch(url, json={"tax_rates": []}, headers=world.admin.headers)
    assert emptied.json()["tax_rates"] == []
    nulls = await client.patch(url, json={"service_modes": None, "tax_rates": None}, headers=world.admin.headers)
    assert _fields(nulls) == {"service_modes", "tax_rates"}
    assert (await client.get(url, headers=world.admin.headers)).json()["service_modes"] == ["takeaway", "eat_in"]


@pytest.mark.parametrize(
    ("modes", "rule"),
    [
        ([], "too_short"),
        (["eat_in", "eat_in"], "duplicate_service_mode"),
        (["delivery"], "enum"),
        ("eat_in", "list_type"),
    ],
)
async def test_service_modes_must_be_distinct_known_modes(
    client: httpx.AsyncClient, world: World, modes: object, rule: str
) -> None:
    """None at all, one twice or one that is not a mode: `invalid` on service_modes, on create and PATCH alike."""
    created = await _create(client, world.admin.headers, name="Modes", service_modes=modes)
    patched = await client.patch(
        f"{BRANCHES}/{world.branch_a}", json={"service_modes": modes}, headers=world.admin.headers
    )
    for response in (created, patched):
        errors = response.json()["error"]["details"]["errors"]
        assert [(e["field"].split(".")[0], e["type"]) for e in errors] == [("service_modes", rule)], errors


async def test_bad_tax_rates_are_invalid_naming_the_field_and_index(client: httpx.AsyncClient, world: World) -> None:
    """A rate out of range, an unknown mode or field, a category that does not exist and a pair rated twice are each
    `invalid` naming the rate by its index; nothing changes."""
    (food,) = await _tax_categories(client, world, "Food")
    url = f"{BRANCHES}/{world.branch_a}"
    shape = [_rate(food, "eat_in", 10001), _rate(food, "delivery", 700), {**_rate(food, "eat_in", 0), "vat": 1}]
    assert _fields(await client.patch(url, json={"tax_rates": shape}, headers=world.admin.headers)) == {
        "tax_rates.0.rate_bp",
        "tax_rates.1.service_mode",
        "tax_rates.2.vat",
    }
    rates = [_rate(food, "eat_in", 1900), _rate(food + 1, "eat_in", 700), _rate(food, "eat_in", 1000)]
    for response in (
        await client.patch(url, json={"tax_rates": rates}, headers=world.admin.headers),
        await _create(client, world.admin.headers, name="Gamma", tax_rates=rates),
    ):
        errors = response.json()["error"]["details"]["errors"]
        assert [(e["field"], e["type"]) for e in errors] == [
            ("tax_rates.1.tax_category_id", "unknown_tax_category"),
            ("tax_rates.2", "duplicate_rate"),
        ]
        assert f"tax category {food + 1} does not exist" == errors[0]["message"]
    assert (await client.get(url, headers=world.admin.headers)).json()["tax_rates"] == []
    assert (await client.get(BRANCHES, headers=world.admin.headers)).json()["total"] == 2
