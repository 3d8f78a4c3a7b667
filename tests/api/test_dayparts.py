"""REST dayparts: CRUD with hours in whole minutes, unique names, `daypart_id` on items and categories, deletes
refused while the menu names a daypart, and new hours announced to the branches offering its items."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from channels import names
from persistence.tables import Item, OutboxEvent
from tests.shop import Shop
from tests.world import World

DAYPARTS = "/api/v1/dayparts"


async def _create(client: httpx.AsyncClient, world: World, name: str, starts: str, ends: str) -> dict[str, Any]:
    body = {"name": name, "starts_at": starts, "ends_at": ends}
    response = await client.post(DAYPARTS, json=body, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [error["field"] for error in response.json()["error"]["details"]["errors"]]


async def test_create_read_list_move_and_delete(client: httpx.AsyncClient, world: World) -> None:
    """Breakfast 06:00-11:00 and a late night crossing midnight are created, read by staff, listed by id; breakfast's
    end moves to 10:30; a taken name in any case is `conflict`; staff may not write; a delete is for good."""
    breakfast = await _create(client, world, " Breakfast ", "06:00", "11:00")
    late = await _create(client, world, "Late night", "22:00", "04:00")
    assert (breakfast["name"], breakfast["starts_at"], breakfast["ends_at"]) == ("Breakfast", "06:00", "11:00")
    url = f"{DAYPARTS}/{breakfast['id']}"
    assert (await client.get(url, headers=world.staff_b.headers)).json() == breakfast
    listed = (await client.get(DAYPARTS, headers=world.manager_a.headers)).json()
    assert [(d["name"], d["starts_at"], d["ends_at"]) for d in listed["items"]] == [
        ("Breakfast", "06:00", "11:00"),
        ("Late night", "22:00", "04:00"),
    ]

    moved = await client.patch(url, json={"ends_at": "10:30"}, headers=world.admin.headers)
    assert (moved.status_code, moved.json()["ends_at"]) == (200, "10:30")
    taken = await client.patch(f"{DAYPARTS}/{late['id']}", json={"name": "BREAKFAST"}, headers=world.admin.headers)
    assert (taken.status_code, taken.json()["error"]["details"]["daypart_id"]) == (409, breakfast["id"])
    assert (await client.patch(url, json={"ends_at": "12:00"}, headers=world.staff_b.headers)).status_code == 403

    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204
    assert (await client.get(url, headers=world.admin.headers)).status_code == 404


async def test_hours_are_whole_minutes_of_local_time(client: httpx.AsyncClient, world: World) -> None:
    """Seconds, a time zone, a time that is none and a missing end are each `invalid` on their field."""
    for starts, ends, field in (("06:00:30", "11:00", "starts_at"), ("06:00", "11:00+01:00", "ends_at")):
        body = {"name": "Breakfast", "starts_at": starts, "ends_at": ends}
        assert _fields(await client.post(DAYPARTS, json=body, headers=world.admin.headers)) == [field]
    body = {"name": "Breakfast", "starts_at": "25:00"}
    assert sorted(_fields(await client.post(DAYPARTS, json=body, headers=world.admin.headers))) == [
        "ends_at",
        "starts_at",
    ]


async def test_items_and_categories_name_a_daypart_and_a_named_one_is_not_deleted(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """The burger and the Drinks category join breakfast (an unknown id is `invalid` on daypart_id); the daypart's
    delete is `conflict` counting both until they leave it (null)."""
    breakfast = await _create(client, world, "Breakfast", "06:00", "11:00")
    headers = world.admin.headers
    burger_url = f"/api/v1/items/{shop.burger}"
    assert _fields(await client.patch(burger_url, json={"daypart_id": 999}, headers=headers)) == ["daypart_id"]
    burger = await client.patch(burger_url, json={"daypart_id": breakfast["id"]}, headers=headers)
    assert (burger.status_code, burger.json()["daypart_id"]) == (200, breakfast["id"])
    async with shop.services.db.session() as session:
        cola = await session.get(Item, shop.cola)
        assert cola is not None
        drinks_url = f"/api/v1/categories/{cola.category_id}"
    assert _fields(await client.patch(drinks_url, json={"daypart_id": 999}, headers=headers)) == ["daypart_id"]
    drinks = await client.patch(drinks_url, json={"daypart_id": breakfast["id"]}, headers=headers)
    assert (drinks.status_code, drinks.json()["daypart_id"]) == (200, breakfast["id"])

    url = f"{DAYPARTS}/{breakfast['id']}"
    refused = await client.delete(url, headers=headers)
    assert refused.status_code == 409
    assert (refused.json()["error"]["details"]["items"], refused.json()["error"]["details"]["categories"]) == (1, 1)
    for part_url in (burger_url, drinks_url):
        cleared = await client.patch(part_url, json={"daypart_id": None}, headers=headers)
        assert (cleared.status_code, cleared.json()["daypart_id"]) == (200, None)
    assert (await client.delete(url, headers=headers)).status_code == 204


async def test_new_hours_are_announced_for_the_items_they_govern(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    """Breakfast on the Drinks category: moving its hours sends the cola, the whole item with its new window, to the
    branch offering it, and no other item."""
    breakfast = await _create(client, world, "Breakfast", "06:00", "11:00")
    async with shop.services.db.session() as session:
        cola = await session.get(Item, shop.cola)
        assert cola is not None
        drinks_url = f"/api/v1/categories/{cola.category_id}"
    await client.patch(drinks_url, json={"daypart_id": breakfast["id"]}, headers=world.admin.headers)
    async with shop.services.db.session() as session:
        before = len((await session.scalars(select(OutboxEvent.id))).all())

    moved = await client.patch(f"{DAYPARTS}/{breakfast['id']}", json={"ends_at": "10:00"}, headers=world.admin.headers)
    assert moved.status_code == 200, moved.text
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()[before:]
    assert [(row.channel, row.event, row.data["id"], row.data["dayparts"]) for row in rows] == [
        (
            names.branch_menu(shop.branch_id),
            "menu.item_updated",
            shop.cola,
            [{"name": "Breakfast", "starts_at": "06:00", "ends_at": "10:00"}],
        )
    ]
