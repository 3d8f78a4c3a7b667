"""REST known customers: phone normalisation, uniqueness, lookup, soft delete and permissions."""

from __future__ import annotations

from typing import Any

import httpx

from tests.world import World

CUSTOMERS = "/api/v1/customers"


async def create(client: httpx.AsyncClient, world: World, **body: Any) -> dict[str, Any]:
    """Create a customer as manager A and return it."""
    response = await client.post(CUSTOMERS, json=body, headers=world.manager_a.headers)
    assert response.status_code == 201, response.text
    customer: dict[str, Any] = response.json()
    return customer


def error_fields(response: httpx.Response) -> list[str]:
    """The fields an `invalid` answer names."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid"
    return sorted(e["field"] for e in error["details"]["errors"])


async def test_create_stores_the_phone_as_e164_for_every_branch(client: httpx.AsyncClient, world: World) -> None:
    """A phone typed with 00 and separators is stored in E.164; customers are chain-wide, so branch B reads them."""
    created = await create(client, world, phone="0049 (30) 123-45.6", name=" Anna Schmidt ", email="anna@example.org")
    assert (created["phone"], created["name"], created["email"]) == ("+4930123456", "Anna Schmidt", "anna@example.org")
    assert (created["notes"], created["is_active"]) == (None, True)

    read = await client.get(f"{CUSTOMERS}/{created['id']}", headers=world.manager_b.headers)
    assert read.status_code == 200
    assert read.json() == created


async def test_create_errors_name_the_fields(client: httpx.AsyncClient, world: World) -> None:
    """A bad phone, a missing name, a bad email and an unknown field are each named; nothing is created."""
    bad = await client.post(
        CUSTOMERS, json={"phone": "030 123456", "email": "not-an-email", "nick": "A"}, headers=world.admin.headers
    )
    assert error_fields(bad) == ["email", "name", "nick", "phone"]
    too_long = await client.post(CUSTOMERS, json={"phone": "+49" + "1" * 14, "name": "A"}, headers=world.admin.headers)
    assert error_fields(too_long) == ["phone"]
    assert (await client.get(CUSTOMERS, headers=world.admin.headers)).json()["total"] == 0


async def test_a_known_phone_is_a_conflict_however_it_is_typed(client: httpx.AsyncClient, world: World) -> None:
    """Creating or changing to a number already stored is a `conflict` naming its customer; the stored one stays."""
    anna = await create(client, world, phone="+4930123456", name="Anna")
    bob = await create(client, world, phone="+4930999999", name="Bob")

    again = await client.post(
        CUSTOMERS, json={"phone": "0049 30 123456", "name": "Impostor"}, headers=world.admin.headers
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict" and again.json()["error"]["details"]["customer_id"] == anna["id"]
    taken = await client.patch(f"{CUSTOMERS}/{bob['id']}", json={"phone": "+49 30 123456"}, headers=world.admin.headers)
    assert taken.status_code == 409

    # A deleted customer still holds the number: the conflict says so, to bring them back instead.
    await client.delete(f"{CUSTOMERS}/{anna['id']}", headers=world.admin.headers)
    deleted = await client.post(CUSTOMERS, json={"phone": "+4930123456", "name": "Anna"}, headers=world.admin.headers)
    assert deleted.status_code == 409 and deleted.json()["error"]["details"]["is_active"] is False

    listed = (await client.get(CUSTOMERS, headers=world.admin.headers)).json()["items"]
    assert [(c["name"], c["phone"]) for c in listed] == [("Anna", "+4930123456"), ("Bob", "+4930999999")]


async def test_list_filters_by_phone_and_part_of_the_name(client: httpx.AsyncClient, world: World) -> None:
    """`phone` matches the number however typed, `q` any part of the name in any case, with % and _ taken literally."""
    anna = await create(client, world, phone="+4930123456", name="Anna")
    joanna = await create(client, world, phone="+4930222222", name="JOANNA 100%")
    await create(client, world, phone="+4930333333", name="Bob")

    async def ids(**params: Any) -> list[int]:
        response = await client.get(CUSTOMERS, params=params, headers=world.manager_a.headers)
        assert response.status_code == 200, response.text
        return [customer["id"] for customer in response.json()["items"]]

    assert await ids(phone="0049 30 123 456") == [anna["id"]]
    assert await ids(q="anna") == [anna["id"], joanna["id"]]
    assert await ids(q="0%") == [joanna["id"]]
    assert await ids(q="%") == [joanna["id"]]
    assert await ids(q="_") == []
    assert await ids(q="ann", limit=1, offset=1) == [joanna["id"]]

    bad = await client.get(CUSTOMERS, params={"phone": "123", "q": ""}, headers=world.manager_a.headers)
    assert error_fields(bad) == ["phone", "q"]


async def test_lookup_finds_the_one_active_customer(client: httpx.AsyncClient, world: World) -> None:
    """Lookup by phone (any formatting) returns the customer; unknown or deleted numbers are `not_found`."""
    anna = await create(client, world, phone="+4930123456", name="Anna")
    lookup = f"{CUSTOMERS}/lookup"

    found = await client.get(lookup, params={"phone": "0049-30-123456"}, headers=world.manager_b.headers)
    assert found.status_code == 200, found.text
    assert found.json() == anna
    unknown = await client.get(lookup, params={"phone": "+4930000000"}, headers=world.manager_a.headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert error_fields(await client.get(lookup, params={"phone": "abc"}, headers=world.manager_a.headers)) == ["phone"]
    assert error_fields(await client.get(lookup, headers=world.manager_a.headers)) == ["phone"]

    await client.delete(f"{CUSTOMERS}/{anna['id']}", headers=world.manager_a.headers)
    gone = await client.get(lookup, params={"phone": "+4930123456"}, headers=world.manager_a.headers)
    assert gone.status_code == 404


async def test_update_applies_only_the_fields_sent(client: httpx.AsyncClient, world: World) -> None:
    """PATCH changes what is sent, normalises the phone, clears email with null and refuses null for required fields."""
    anna = await create(client, world, phone="+4930123456", name="Anna", email="anna@example.org", notes="no onions")
    url = f"{CUSTOMERS}/{anna['id']}"

    renamed = await client.patch(url, json={"name": "Anna S."}, headers=world.manager_b.headers)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["email"], renamed.json()["notes"]) == (
        "Anna S.",
        "anna@example.org",
        "no onions",
    )
    changed = await client.patch(url, json={"phone": "0049 30 123456", "email": None}, headers=world.manager_a.headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["phone"], changed.json()["email"], changed.json()["notes"]) == (
        "+4930123456",
        None,
        "no onions",
    )

    nulls = await client.patch(url, json={"phone": None, "name": None, "is_active": None}, headers=world.admin.headers)
    assert error_fields(nulls) == ["is_active", "name", "phone"]
    assert error_fields(await client.patch(url, json={"phone": "12"}, headers=world.admin.headers)) == ["phone"]
    assert (await client.get(url, headers=world.admin.headers)).json()["name"] == "Anna S."


async def test_delete_deactivates_and_keeps_the_customer(client: httpx.AsyncClient, world: World) -> None:
    """DELETE answers 204 and only switches the customer off; PATCH is_active brings them back."""
    anna = await create(client, world, phone="+4930123456", name="Anna", notes="regular")
    url = f"{CUSTOMERS}/{anna['id']}"

    assert (await client.delete(url, headers=world.manager_a.headers)).status_code == 204
    kept = (await client.get(url, headers=world.manager_a.headers)).json()
    assert kept["is_active"] is False
    assert {key: kept[key] for key in ("phone", "name", "notes")} == {
        "phone": "+4930123456",
        "name": "Anna",
        "notes": "regular",
    }
    inactive = (await client.get(CUSTOMERS, params={"is_active": "false"}, headers=world.admin.headers)).json()
    assert [c["id"] for c in inactive["items"]] == [anna["id"]]
    assert (await client.get(CUSTOMERS, params={"is_active": "true"}, headers=world.admin.headers)).json()["total"] == 0

    back = await client.patch(url, json={"is_active": True}, headers=world.manager_a.headers)
    assert back.json()["is_active"] is True
    lookup = await client.get(f"{CUSTOMERS}/lookup", params={"phone": "+4930123456"}, headers=world.admin.headers)
    assert lookup.status_code == 200


async def test_unknown_customer_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    """Read, update and delete of an id that does not exist, or is not a number, answer `not_found`."""
    for method, body in (("GET", None), ("PATCH", {"name": "X"}), ("DELETE", None)):
        for customer_id in ("999", "abc"):
            response = await client.request(
                method, f"{CUSTOMERS}/{customer_id}", json=body, headers=world.admin.headers
            )
            assert response.status_code == 404, (method, customer_id)
            assert response.json()["error"]["code"] == "not_found"


async def test_every_route_refuses_staff(client: httpx.AsyncClient, world: World) -> None:
    """Staff of any branch hold no customer permission: every route answers 403 and nothing changes."""
    anna = await create(client, world, phone="+4930123456", name="Anna")
    routes = [
        ("GET", CUSTOMERS, None, None),
        ("GET", f"{CUSTOMERS}/lookup", {"phone": "+4930123456"}, None),
        ("POST", CUSTOMERS, None, {"phone": "+4930999999", "name": "Sneaky"}),
        ("GET", f"{CUSTOMERS}/{anna['id']}", None, None),
        ("PATCH", f"{CUSTOMERS}/{anna['id']}", None, {"name": "Renamed"}),
        ("DELETE", f"{CUSTOMERS}/{anna['id']}", None, None),
    ]
    for headers in (world.staff_a.headers, world.staff_b.headers):
        for method, url, params, body in routes:
            response = await client.request(method, url, params=params, json=body, headers=headers)
            assert response.status_code == 403, (method, url, response.text)
            assert response.json()["error"]["code"] == "forbidden"
    listed = (await client.get(CUSTOMERS, headers=world.admin.headers)).json()["items"]
    assert [(c["name"], c["is_active"]) for c in listed] == [("Anna", True)]
