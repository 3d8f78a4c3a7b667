"""REST allergens and calories (server/api/nutrition.py) of items and their option choices: written, shown, checked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from persistence.tables import Category, Item
from server.services import Services
from tests.world import World

ITEMS = "/api/v1/items"


async def _category(services: Services) -> int:
    async with services.db.session() as session:
        category = Category(name="Burgers")
        session.add(category)
        await session.flush()
        return category.id


def _burger(category_id: int, **changes: Any) -> dict[str, Any]:
    """A burger of gluten, milk and sesame (sent out of the EU's order), 550 kcal, with extras: cheese adds milk and
    110 kcal, "no sauce" takes 40 kcal away, bacon says nothing."""
    body: dict[str, Any] = {
        "category_id": category_id,
        "name": "Cheeseburger",
        "price": 650,
        "allergens": ["sesame", "gluten", "milk"],
        "calories": 550,
        "option_groups": [
            {
                "name": "Extras",
                "min_select": 0,
                "max_select": 3,
                "choices": [
                    {"name": "Cheese", "price_delta": 80, "allergens": ["milk"], "calories": 110, "position": 0},
                    {"name": "No sauce", "calories": -40, "position": 1},
                    {"name": "Bacon", "price_delta": 120, "position": 2},
                ],
            }
        ],
    }
    body.update(changes)
    return body


def _errors(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"
    return list(response.json()["error"]["details"]["errors"])


async def test_allergens_and_calories_are_stored_in_the_eus_order_and_shown(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """An item's and its choices' allergens come back in the EU's order whatever order they were sent in, with their
    calories (a choice's may be negative); a choice that says nothing has none and unknown calories."""
    response = await client.post(ITEMS, json=_burger(await _category(services)), headers=world.admin.headers)
    assert response.status_code == 201, response.text
    item = response.json()
    assert (item["allergens"], item["calories"]) == (["gluten", "milk", "sesame"], 550)
    [extras] = item["option_groups"]
    assert [(c["name"], c["allergens"], c["calories"]) for c in extras["choices"]] == [
        ("Cheese", ["milk"], 110),
        ("No sauce", [], -40),
        ("Bacon", [], None),
    ]
    assert (await client.get(f"{ITEMS}/{item['id']}", headers=world.staff_a.headers)).json() == item
    async with services.db.session() as session:
        stored = await session.get(Item, item["id"])
        assert stored is not None and (stored.allergens, stored.calories) == (["gluten", "milk", "sesame"], 550)


async def test_an_item_without_them_has_no_allergens_and_unknown_calories(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Left out, an item has no allergens (`[]`) and calories null: not known."""
    body = {"category_id": await _category(services), "name": "Water", "price": 200}
    response = await client.post(ITEMS, json=body, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    assert (response.json()["allergens"], response.json()["calories"]) == ([], None)


CHOICE = "option_groups.0.choices.0"


@pytest.mark.parametrize(
    ("item_change", "choice_change", "field", "rule"),
    [
        ({"allergens": ["gluten", "peanut"]}, {}, "allergens.1", "enum"),
        ({"allergens": ["milk", "gluten", "milk"]}, {}, "allergens", "value_error"),
        ({"allergens": "milk"}, {}, "allergens", "list_type"),
        ({"allergens": None}, {}, "allergens", "list_type"),
        ({"allergens": ["gluten"] * 15}, {}, "allergens", "too_long"),
        ({"calories": -1}, {}, "calories", "greater_than_equal"),
        ({"calories": 550.5}, {}, "calories", "int_type"),
        ({"calories": "550"}, {}, "calories", "int_type"),
        ({}, {"allergens": ["cheese"]}, f"{CHOICE}.allergens.0", "enum"),
        ({}, {"allergens": ["milk", "milk"]}, f"{CHOICE}.allergens", "value_error"),
        ({}, {"calories": 1.5}, f"{CHOICE}.calories", "int_type"),
    ],
)
async def test_bad_allergens_and_calories_are_invalid_naming_the_field(
    client: httpx.AsyncClient,
    services: Services,
    world: World,
    item_change: dict[str, Any],
    choice_change: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    """An allergen not of the EU's 14, one listed twice, more than 14, calories below 0 on an item or not a whole
    number: `invalid` on that field, and no item is created."""
    body = _burger(await _category(services), **item_change)
    body["option_groups"][0]["choices"][0].update(choice_change)
    response = await client.post(ITEMS, json=body, headers=world.admin.headers)
    assert [(error["field"], error["type"]) for error in _errors(response)] == [(field, rule)]
    async with services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Item)) == 0


async def test_a_repeated_allergen_is_named(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """The error of an allergen listed twice says which."""
    body = _burger(await _category(services), allergens=["milk", "eggs", "milk", "eggs", "gluten"])
    [error] = _errors(await client.post(ITEMS, json=body, headers=world.admin.headers))
    assert "listed more than once: eggs, milk" in error["message"]


async def test_patch_changes_allergens_and_clears_calories(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A PATCH replaces the allergens (`[]`: none) and changes or clears (null) the calories; fields left out keep
    theirs, and allergens may not be null. Option choices sent back as read keep theirs."""
    created = await client.post(ITEMS, json=_burger(await _category(services)), headers=world.admin.headers)
    item = created.json()
    url = f"{ITEMS}/{item['id']}"
    changed = await client.patch(
        url, json={"allergens": ["mustard", "eggs"], "calories": 600}, headers=world.admin.headers
    )
    assert (changed.json()["allergens"], changed.json()["calories"]) == (["eggs", "mustard"], 600), changed.text
    kept = await client.patch(
        url, json={"price": 700, "option_groups": item["option_groups"]}, headers=world.admin.headers
    )
    assert (kept.json()["allergens"], kept.json()["calories"]) == (["eggs", "mustard"], 600), kept.text
    assert kept.json()["option_groups"] == item["option_groups"]
    cleared = await client.patch(url, json={"allergens": [], "calories": None}, headers=world.admin.headers)
    assert (cleared.json()["allergens"], cleared.json()["calories"]) == ([], None), cleared.text
    refused = await client.patch(url, json={"allergens": None}, headers=world.admin.headers)
    assert [error["field"] for error in _errors(refused)] == ["allergens"]
