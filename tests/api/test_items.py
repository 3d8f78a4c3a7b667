"""REST item writes: option groups written whole with stable ids, validation with field paths, patches that
change only what is sent, and tax categories.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from persistence.tables import Item, OptionChoice
from server.services import Services
from tests.api.item_helpers import ITEMS, _burger, _category, _create
from tests.world import World


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"
    return [error["field"] for error in response.json()["error"]["details"]["errors"]]


async def test_create_returns_the_item_with_its_groups_in_order(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A created item comes back with ids for every group and choice, in display order, offered nowhere yet."""
    category_id = await _category(services)
    body = _burger(category_id)
    body["option_groups"].reverse()  # sent out of order: positions decide
    item = await _create(client, world, body)
    assert (item["name"], item["price"], item["category_id"]) == ("Cheeseburger", 650, category_id)
    assert item["image_url"] == "https://img.example.com/cheeseburger.png"
    assert [g["name"] for g in item["option_groups"]] == ["Size", "Extras"]
    size = item["option_groups"][0]
    assert [(c["name"], c["price_delta"], c["is_default"]) for c in size["choices"]] == [
        ("Small", -100, False),
        ("Medium", 0, True),
        ("Large", 150, False),
    ]
    assert all(isinstance(c["id"], int) for g in item["option_groups"] for c in g["choices"])
    assert (item["availability"], item["tax_category_id"]) == ([], None)
    read = await client.get(f"{ITEMS}/{item['id']}", headers=world.staff_b.headers)
    assert read.json() == item


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"name": " "}, ["name"]),
        ({"price": -1}, ["price"]),
        ({"price": 6.5}, ["price"]),
        ({"price": "650"}, ["price"]),
        ({"image_url": "ftp://img.example.com/a.png"}, ["image_url"]),
        ({"image_url": "not a url"}, ["image_url"]),
        ({"category_id": 999}, ["category_id"]),
        ({"tax_category_id": 999}, ["tax_category_id"]),
        ({"tax_category_id": 0}, ["tax_category_id"]),
        ({"flavour": "umami"}, ["flavour"]),
    ],
)
async def test_bad_item_fields_are_invalid(
    client: httpx.AsyncClient, services: Services, world: World, change: dict[str, Any], fields: list[str]
) -> None:
    """Names, money, URLs and the category are checked, each error naming its field."""
    category_id = await _category(services)
    response = await client.post(ITEMS, json={**_burger(category_id), **change}, headers=world.admin.headers)
    assert _fields(response) == fields


async def test_a_deleted_category_takes_no_items(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """Creating an item in a deleted category is `invalid` on category_id."""
    category_id = await _category(services, deleted=True)
    response = await client.post(ITEMS, json=_burger(category_id), headers=world.admin.headers)
    assert _fields(response) == ["category_id"]


@pytest.mark.parametrize(
    ("group_change", "choice_change", "defaults", "field"),
    [
        ({"min_select": 2, "max_select": 1}, {}, 0, "option_groups.1.min_select"),
        ({"max_select": 0, "min_select": 0}, {}, 0, "option_groups.1.max_select"),
        ({"max_select": 3}, {}, 0, "option_groups.1.max_select"),
        ({"min_select": -1}, {}, 0, "option_groups.1.min_select"),
        ({"min_select": 1, "max_select": 1}, {}, 2, "option_groups.1.choices"),
        ({"min_select": 2}, {}, 1, "option_groups.1.choices"),
        ({"name": ""}, {}, 0, "option_groups.1.name"),
        ({}, {"name": ""}, 0, "option_groups.1.choices.0.name"),
        ({}, {"price_delta": 0.5}, 0, "option_groups.1.choices.0.price_delta"),
        ({}, {"id": 12345}, 0, "option_groups.1.choices.0.id"),
    ],
)
async def test_option_group_errors_name_the_field(
    client: httpx.AsyncClient,
    services: Services,
    world: World,
    group_change: dict[str, Any],
    choice_change: dict[str, Any],
    defaults: int,
    field: str,
) -> None:
    """Broken limits, defaults that are no valid selection, empty names and foreign ids point at their field."""
    body = _burger(await _category(services))
    extras = body["option_groups"][1]
    extras.update(group_change)
    extras["choices"][0].update(choice_change)
    for choice in extras["choices"][:defaults]:
        choice["is_default"] = True
    response = await client.post(ITEMS, json=body, headers=world.admin.headers)
    assert field in _fields(response)
    async with services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Item)) == 0


async def test_patch_keeps_the_ids_of_groups_and_choices_sent_back(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Sent ids are updated in place, new entries are created, left-out ones are deleted."""
    item = await _create(client, world, _burger(await _category(services)))
    size, extras = item["option_groups"]
    small, medium, large = size["choices"]
    size_in = {
        "id": size["id"],
        "name": "Size",
        "min_select": 1,
        "max_select": 1,
        "choices": [
            {"id": medium["id"], "name": "Regular", "is_default": True, "position": 0},
            {"id": large["id"], "name": "Large", "price_delta": 200, "position": 1},
            {"name": "XXL", "price_delta": 400, "position": 2},
        ],
    }
    sauce_in = {"name": "Sauce", "min_select": 0, "max_select": 1, "choices": [{"name": "Ketchup"}], "position": 5}
    response = await client.patch(
        f"{ITEMS}/{item['id']}", json={"option_groups": [size_in, sauce_in]}, headers=world.admin.headers
    )
    assert response.status_code == 200, response.text
    groups = response.json()["option_groups"]
    assert [g["name"] for g in groups] == ["Size", "Sauce"]
    assert groups[0]["id"] == size["id"]
    choices = groups[0]["choices"]
    assert [(c["id"], c["name"], c["price_delta"]) for c in choices[:2]] == [
        (medium["id"], "Regular", 0),
        (large["id"], "Large", 200),
    ]
    assert choices[2]["name"] == "XXL" and choices[2]["id"] not in {small["id"], medium["id"], large["id"]}
    assert groups[1]["id"] != extras["id"]
    assert response.json()["updated_at"] > item["updated_at"]

    async with services.db.session() as session:
        remaining = set(await session.scalars(select(OptionChoice.id)))
    assert small["id"] not in remaining
    assert not {c["id"] for c in extras["choices"]} & remaining


async def test_patch_may_move_a_choice_to_another_group(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A choice sent under another group of the same item keeps its id there."""
    item = await _create(client, world, _burger(await _category(services)))
    size, extras = item["option_groups"]
    bacon = extras["choices"][0]
    size["choices"].append({"id": bacon["id"], "name": "Bacon", "price_delta": 120, "position": 9})
    extras["choices"] = extras["choices"][1:]
    extras["max_select"] = 1
    response = await client.patch(
        f"{ITEMS}/{item['id']}", json={"option_groups": [size, extras]}, headers=world.admin.headers
    )
    assert response.status_code == 200, response.text
    groups = response.json()["option_groups"]
    assert groups[0]["choices"][-1]["id"] == bacon["id"]
    assert [c["name"] for c in groups[1]["choices"]] == ["Jalapeños"]


async def test_patch_refuses_ids_of_another_item_or_sent_twice(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A group or choice id that is not this item's, or appears twice, is `invalid` and changes nothing."""
    category_id = await _category(services)
    item = await _create(client, world, _burger(category_id))
    other = await _create(client, world, _burger(category_id, name="Other"))
    size = item["option_groups"][0]
    foreign = dict(other["option_groups"][0], choices=[dict(c) for c in other["option_groups"][0]["choices"]])
    url = f"{ITEMS}/{item['id']}"

    response = await client.patch(url, json={"option_groups": [foreign]}, headers=world.admin.headers)
    assert _fields(response) == ["option_groups.0.id"] + [f"option_groups.0.choices.{i}.id" for i in range(3)]
    twice = await client.patch(url, json={"option_groups": [size, size]}, headers=world.admin.headers)
    assert "option_groups.1.id" in _fields(twice)
    assert (await client.get(url, headers=world.admin.headers)).json()["option_groups"] == item["option_groups"]


async def test_patch_changes_only_the_fields_sent(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """Fields left out keep their value, option groups included; nullable ones may be cleared."""
    item = await _create(client, world, _burger(await _category(services)))
    url = f"{ITEMS}/{item['id']}"
    new_category = await _category(services, "Specials")
    response = await client.patch(
        url, json={"price": 700, "description": None, "category_id": new_category}, headers=world.admin.headers
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["price"], changed["description"], changed["category_id"]) == (700, None, new_category)
    assert (changed["name"], changed["image_url"]) == (item["name"], item["image_url"])
    assert changed["option_groups"] == item["option_groups"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"price": None}, "price"),
        ({"option_groups": None}, "option_groups"),
        ({"category_id": 999}, "category_id"),
        ({"tax_category_id": 999}, "tax_category_id"),
        ({"price": -5}, "price"),
    ],
)
async def test_patch_refuses_nulls_and_bad_values(
    client: httpx.AsyncClient, services: Services, world: World, body: dict[str, Any], field: str
) -> None:
    """A PATCH may leave a required field out but not null it; values are checked as on create."""
    item = await _create(client, world, _burger(await _category(services)))
    response = await client.patch(f"{ITEMS}/{item['id']}", json=body, headers=world.admin.headers)
    assert _fields(response) == [field]


async def test_an_items_tax_category_is_set_changed_and_cleared(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """`tax_category_id` is given on create, changed or cleared (null) by PATCH; one of no tax category is `invalid`."""
    food, drinks = [
        (await client.post("/api/v1/tax-categories", json={"name": name}, headers=world.admin.headers)).json()["id"]
        for name in ("Food", "Drinks")
    ]
    item = await _create(client, world, _burger(await _category(services), tax_category_id=food))
    url = f"{ITEMS}/{item['id']}"
    assert item["tax_category_id"] == food
    assert (await client.get(url, headers=world.staff_a.headers)).json()["tax_category_id"] == food
    changed = await client.patch(url, json={"tax_category_id": drinks}, headers=world.admin.headers)
    assert changed.json()["tax_category_id"] == drinks, changed.text
    kept = await client.patch(url, json={"price": 700}, headers=world.admin.headers)
    assert kept.json()["tax_category_id"] == drinks
    unknown = await client.patch(url, json={"tax_category_id": drinks + 100}, headers=world.admin.headers)
    message = f"tax category {drinks + 100} does not exist"
    assert unknown.json()["error"]["details"]["errors"] == [
        {"field": "tax_category_id", "message": message, "type": "unknown_tax_category"}
    ]
    cleared = await client.patch(url, json={"tax_category_id": None}, headers=world.admin.headers)
    assert cleared.json()["tax_category_id"] is None
    assert (await client.get(url, headers=world.admin.headers)).json()["tax_category_id"] is None
