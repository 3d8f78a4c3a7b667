"""REST categories: display order, partial updates, soft delete guarded by live items, roles."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from persistence.tables import Category
from server.services import Services
from tests.world import World

CATEGORIES = "/api/v1/categories"


async def _create(client: httpx.AsyncClient, world: World, name: str, position: int = 0) -> dict[str, Any]:
    response = await client.post(CATEGORIES, json={"name": name, "position": position}, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _add_item(client: httpx.AsyncClient, world: World, category_id: int) -> int:
    body = {"category_id": category_id, "name": "Fries", "price": 250}
    response = await client.post("/api/v1/items", json=body, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_categories_list_in_display_order(client: httpx.AsyncClient, world: World) -> None:
    """The list is ordered by position, then by id; staff may read it."""
    drinks = await _create(client, world, "Drinks", position=2)
    burgers = await _create(client, world, "Burgers", position=1)
    sides = await _create(client, world, "Sides", position=2)
    assert (burgers["name"], burgers["position"], burgers["deleted_at"]) == ("Burgers", 1, None)

    response = await client.get(CATEGORIES, headers=world.staff_a.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert [c["id"] for c in page["items"]] == [burgers["id"], drinks["id"], sides["id"]]
    assert page["total"] == 3


async def test_categories_paginate(client: httpx.AsyncClient, world: World) -> None:
    """limit and offset cut the ordered list; total counts all of it."""
    ids = [(await _create(client, world, f"C{i}", position=i))["id"] for i in range(5)]
    page = (await client.get(CATEGORIES, params={"limit": 2, "offset": 3}, headers=world.admin.headers)).json()
    assert [c["id"] for c in page["items"]] == ids[3:5]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 3)


async def test_update_changes_only_the_fields_sent(client: httpx.AsyncClient, world: World) -> None:
    """A PATCH with one field keeps the others."""
    category = await _create(client, world, "Drinks", position=4)
    url = f"{CATEGORIES}/{category['id']}"
    response = await client.patch(url, json={"name": "Cold drinks"}, headers=world.admin.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["position"]) == ("Cold drinks", 4)
    read = await client.get(url, headers=world.manager_b.headers)
    assert read.json()["name"] == "Cold drinks"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"position": None}, "position"),
        ({"position": 2**40}, "position"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_updates_are_invalid_naming_the_field(
    client: httpx.AsyncClient, world: World, body: dict[str, Any], field: str
) -> None:
    """Empty names, nulls for required fields, out-of-range numbers and unknown fields are `invalid`."""
    category = await _create(client, world, "Drinks")
    response = await client.patch(f"{CATEGORIES}/{category['id']}", json=body, headers=world.admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"
    assert [e["field"] for e in response.json()["error"]["details"]["errors"]] == [field]


async def test_create_needs_a_name(client: httpx.AsyncClient, world: World) -> None:
    """A category without a name is `invalid`."""
    response = await client.post(CATEGORIES, json={"position": 1}, headers=world.admin.headers)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["error"]["details"]["errors"]] == ["name"]


async def test_delete_is_soft_and_hides_the_category(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A deleted category leaves the list, stays readable by id and on request, and its row is kept."""
    category = await _create(client, world, "Seasonal")
    url = f"{CATEGORIES}/{category['id']}"
    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204

    listed = (await client.get(CATEGORIES, headers=world.admin.headers)).json()
    assert listed["items"] == []
    everything = (await client.get(CATEGORIES, params={"include_deleted": "true"}, headers=world.admin.headers)).json()
    assert [c["id"] for c in everything["items"]] == [category["id"]]
    read = await client.get(url, headers=world.admin.headers)
    assert read.status_code == 200 and read.json()["deleted_at"] is not None
    async with services.db.session() as session:
        stored = await session.get(Category, category["id"])
        assert stored is not None and stored.name == "Seasonal"
    # Deleting again changes nothing; editing a deleted category is refused.
    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204
    assert (await client.get(url, headers=world.admin.headers)).json()["deleted_at"] == read.json()["deleted_at"]
    patched = await client.patch(url, json={"name": "Back"}, headers=world.admin.headers)
    assert patched.status_code == 409


async def test_delete_is_refused_while_items_remain(client: httpx.AsyncClient, world: World) -> None:
    """A category holding items that are not deleted cannot be deleted; once they are, it can."""
    category = await _create(client, world, "Sides")
    item_id = await _add_item(client, world, category["id"])
    url = f"{CATEGORIES}/{category['id']}"

    refused = await client.delete(url, headers=world.admin.headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "conflict"
    assert refused.json()["error"]["details"]["items"] == 1
    assert (await client.get(url, headers=world.admin.headers)).json()["deleted_at"] is None

    assert (await client.delete(f"/api/v1/items/{item_id}", headers=world.admin.headers)).status_code == 204
    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204


@pytest.mark.parametrize("actor", ["manager_a", "staff_a"])
async def test_only_menu_writers_change_categories(client: httpx.AsyncClient, world: World, actor: str) -> None:
    """Managers and staff read the menu but may not create, edit or delete categories."""
    headers = getattr(world, actor).headers
    category = await _create(client, world, "Drinks")
    url = f"{CATEGORIES}/{category['id']}"
    assert (await client.post(CATEGORIES, json={"name": "X"}, headers=headers)).status_code == 403
    assert (await client.patch(url, json={"name": "X"}, headers=headers)).status_code == 403
    assert (await client.delete(url, headers=headers)).status_code == 403
    assert (await client.get(url, headers=headers)).json()["name"] == "Drinks"


async def test_unknown_category_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    """Reading, editing or deleting a category that does not exist is `not_found`."""
    url = f"{CATEGORIES}/999"
    for response in (
        await client.get(url, headers=world.admin.headers),
        await client.patch(url, json={"name": "X"}, headers=world.admin.headers),
        await client.delete(url, headers=world.admin.headers),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
