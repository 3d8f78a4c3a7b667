"""REST tax categories: CRUD, unique names, deletes refused while items name a category."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from persistence.tables import Category, Item
from server.services import Services
from tests.world import World

TAX_CATEGORIES = "/api/v1/tax-categories"


async def _create(client: httpx.AsyncClient, world: World, name: str) -> dict[str, Any]:
    response = await client.post(TAX_CATEGORIES, json={"name": name}, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _item(services: Services, tax_category_id: int, *, name: str = "Soup") -> int:
    async with services.db.session() as session:
        category = Category(name="Mains")
        session.add(category)
        await session.flush()
        item = Item(category_id=category.id, name=name, price=500, tax_category_id=tax_category_id)
        session.add(item)
        await session.flush()
        return item.id


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"
    return [error["field"] for error in response.json()["error"]["details"]["errors"]]


async def test_create_read_list_rename_and_delete(client: httpx.AsyncClient, world: World) -> None:
    """A category is created with its name trimmed, read and listed by id, renamed, and deleted for good."""
    food = await _create(client, world, " Food ")
    drinks = await _create(client, world, "Drinks")
    assert food["name"] == "Food" and isinstance(food["id"], int)
    url = f"{TAX_CATEGORIES}/{food['id']}"
    assert (await client.get(url, headers=world.staff_b.headers)).json() == food

    listed = (await client.get(TAX_CATEGORIES, headers=world.manager_a.headers)).json()
    assert [item["name"] for item in listed["items"]] == ["Food", "Drinks"]
    assert (listed["total"], listed["limit"], listed["offset"]) == (2, 50, 0)
    page = (await client.get(TAX_CATEGORIES, params={"limit": 1, "offset": 1}, headers=world.admin.headers)).json()
    assert ([item["id"] for item in page["items"]], page["total"]) == ([drinks["id"]], 2)

    renamed = await client.patch(url, json={"name": "Hot food"}, headers=world.admin.headers)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["id"], renamed.json()["name"]) == (food["id"], "Hot food")
    assert (await client.get(url, headers=world.admin.headers)).json()["name"] == "Hot food"

    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204
    assert (await client.get(url, headers=world.admin.headers)).status_code == 404
    listed = (await client.get(TAX_CATEGORIES, headers=world.admin.headers)).json()
    assert [item["id"] for item in listed["items"]] == [drinks["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": " "}, "name"), ({"name": "x" * 41}, "name"), ({}, "name"), ({"name": "Food", "rate": 7}, "rate")],
)
async def test_bad_bodies_are_invalid_naming_the_field(
    client: httpx.AsyncClient, world: World, body: dict[str, Any], field: str
) -> None:
    """A blank name, one over 40 characters, none, or an unknown field: `invalid` naming it, nothing created."""
    response = await client.post(TAX_CATEGORIES, json=body, headers=world.admin.headers)
    assert _fields(response) == [field]
    assert (await client.get(TAX_CATEGORIES, headers=world.admin.headers)).json()["total"] == 0


async def test_forty_characters_is_the_longest_name(client: httpx.AsyncClient, world: World) -> None:
    """A name of exactly 40 characters is taken; null is no name for PATCH."""
    category = await _create(client, world, "x" * 40)
    refused = await client.patch(f"{TAX_CATEGORIES}/{category['id']}", json={"name": None}, headers=world.admin.headers)
    assert _fields(refused) == ["name"]


async def test_a_name_taken_in_any_case_is_a_conflict(client: httpx.AsyncClient, world: World) -> None:
    """Create or rename to a taken name, in any case, is `conflict` naming the holder; keeping one's name is fine."""
    food = await _create(client, world, "Food")
    drinks = await _create(client, world, "Drinks")
    twice = await client.post(TAX_CATEGORIES, json={"name": "FOOD"}, headers=world.admin.headers)
    assert twice.status_code == 409, twice.text
    assert twice.json()["error"]["code"] == "conflict"
    assert twice.json()["error"]["details"] == {"field": "name", "tax_category_id": food["id"]}
    url = f"{TAX_CATEGORIES}/{drinks['id']}"
    assert (await client.patch(url, json={"name": "food"}, headers=world.admin.headers)).status_code == 409
    assert (await client.patch(url, json={"name": "Drinks"}, headers=world.admin.headers)).status_code == 200
    assert (await client.get(TAX_CATEGORIES, headers=world.admin.headers)).json()["total"] == 2


@pytest.mark.parametrize("actor", ["manager_a", "staff_a"])
async def test_only_menu_writers_change_tax_categories(client: httpx.AsyncClient, world: World, actor: str) -> None:
    """Managers and staff read tax categories but may not create, rename or delete them."""
    headers = getattr(world, actor).headers
    food = await _create(client, world, "Food")
    url = f"{TAX_CATEGORIES}/{food['id']}"
    assert (await client.post(TAX_CATEGORIES, json={"name": "X"}, headers=headers)).status_code == 403
    assert (await client.patch(url, json={"name": "X"}, headers=headers)).status_code == 403
    assert (await client.delete(url, headers=headers)).status_code == 403
    assert (await client.get(url, headers=headers)).json()["name"] == "Food"


async def test_unknown_tax_category_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    """Reading, renaming or deleting a tax category that does not exist is `not_found`."""
    url = f"{TAX_CATEGORIES}/999"
    for response in (
        await client.get(url, headers=world.admin.headers),
        await client.patch(url, json={"name": "X"}, headers=world.admin.headers),
        await client.delete(url, headers=world.admin.headers),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"


async def test_delete_is_refused_while_items_are_of_the_category(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """`conflict` naming how many items on the menu are of it; once they are deleted, it goes and they let go of it."""
    food = await _create(client, world, "Food")
    items = [await _item(services, food["id"], name=name) for name in ("Soup", "Stew")]
    url = f"{TAX_CATEGORIES}/{food['id']}"
    refused = await client.delete(url, headers=world.admin.headers)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["details"]) == ("conflict", {"tax_category_id": food["id"], "items": 2})
    assert "2 items" in error["message"]

    assert (await client.delete(f"/api/v1/items/{items[0]}", headers=world.admin.headers)).status_code == 204
    assert (await client.delete(url, headers=world.admin.headers)).json()["error"]["details"]["items"] == 1
    assert (await client.delete(f"/api/v1/items/{items[1]}", headers=world.admin.headers)).status_code == 204
    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204
    for item_id in items:
        read = (await client.get(f"/api/v1/items/{item_id}", headers=world.admin.headers)).json()
        assert read["tax_category_id"] is None and read["deleted_at"] is not None
