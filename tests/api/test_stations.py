"""REST kitchen stations: per-branch CRUD by managers, codes unique in the branch and one expo, `station` on items
and categories routing an order's lines, and a kitchen display's `station_id`."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from persistence.enums import DeviceKind
from persistence.tables import Item
from tests.live import add_device
from tests.shop import Shop, principal_of
from tests.world import World

STATIONS = "/api/v1/stations"


async def _create(client: httpx.AsyncClient, world: World, branch_id: int, code: str, **more: Any) -> dict[str, Any]:
    body = {"branch_id": branch_id, "code": code, "name": code.title(), **more}
    response = await client.post(STATIONS, json=body, headers=world.manager_a.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_managers_create_list_update_and_delete_their_branchs_stations(
    client: httpx.AsyncClient, world: World
) -> None:
    grill = await _create(client, world, world.branch_a, "grill", position=1)
    expo = await _create(client, world, world.branch_a, "expo", is_expo=True)
    assert (grill["code"], grill["is_expo"], expo["is_expo"]) == ("grill", False, True)
    listed = (await client.get(STATIONS, headers=world.staff_a.headers)).json()
    assert [station["code"] for station in listed["items"]] == ["expo", "grill"]
    # Another branch's managers neither see nor change them, nor add stations to branch a.
    url = f"{STATIONS}/{grill['id']}"
    assert (await client.get(url, headers=world.manager_b.headers)).status_code == 404
    assert (await client.get(STATIONS, headers=world.manager_b.headers)).json()["items"] == []
    other = {"branch_id": world.branch_a, "code": "fryer", "name": "Fryer"}
    assert (await client.post(STATIONS, json=other, headers=world.manager_b.headers)).status_code == 403
    assert (await client.post(STATIONS, json=other, headers=world.staff_a.headers)).status_code == 403

    renamed = await client.patch(url, json={"name": "Charcoal grill", "position": 0}, headers=world.manager_a.headers)
    assert (renamed.status_code, renamed.json()["name"]) == (200, "Charcoal grill")
    code = await client.patch(url, json={"code": "bbq"}, headers=world.manager_a.headers)
    assert code.status_code == 422
    assert (await client.delete(url, headers=world.manager_a.headers)).status_code == 204
    assert (await client.get(url, headers=world.admin.headers)).status_code == 404


async def test_codes_are_slugs_unique_per_branch_and_a_branch_has_one_expo(
    client: httpx.AsyncClient, world: World
) -> None:
    await _create(client, world, world.branch_a, "grill")
    for code in ("Grill", "1st", "grill:2", ""):
        body = {"branch_id": world.branch_a, "code": code, "name": "Bad"}
        response = await client.post(STATIONS, json=body, headers=world.admin.headers)
        assert response.status_code == 422, code
    again = await client.post(
        STATIONS, json={"branch_id": world.branch_a, "code": "grill", "name": "Grill"}, headers=world.admin.headers
    )
    assert (again.status_code, again.json()["error"]["details"]["field"]) == (409, "code")
    body = {"branch_id": world.branch_b, "code": "grill", "name": "Grill"}
    assert (await client.post(STATIONS, json=body, headers=world.admin.headers)).status_code == 201
    await _create(client, world, world.branch_a, "expo", is_expo=True)
    second = await client.post(
        STATIONS,
        json={"branch_id": world.branch_a, "code": "pass", "name": "Pass", "is_expo": True},
        headers=world.admin.headers,
    )
    assert (second.status_code, second.json()["error"]["details"]["field"]) == (409, "is_expo")


async def test_items_and_categories_route_lines_and_a_display_belongs_to_a_station(
    client: httpx.AsyncClient, shop: Shop, world: World
) -> None:
    grill = await _create(client, world, shop.branch_id, "grill")
    drinks = await _create(client, world, shop.branch_id, "drinks")
    async with shop.services.db.session() as session:
        drinks_category = await session.scalar(select(Item.category_id).where(Item.id == shop.cola))
    headers = world.admin.headers
    category = await client.patch(f"/api/v1/categories/{drinks_category}", json={"station": "drinks"}, headers=headers)
    assert (category.status_code, category.json()["station"]) == (200, "drinks")
    item = await client.patch(f"/api/v1/items/{shop.fries}", json={"station": "fryer"}, headers=headers)
    assert (item.status_code, item.json()["station"]) == (200, "fryer")
    bad = await client.patch(f"/api/v1/items/{shop.fries}", json={"station": "Fryer!"}, headers=headers)
    assert bad.status_code == 422
    order = await shop.paid_order([{"item_id": shop.fries, "qty": 1}, {"item_id": shop.cola, "qty": 1}])
    # No fryer in the branch: fries go to the default station, the first (grill).
    assert [line["station"] for line in order["lines"]] == ["grill", "drinks"]
    cleared = await client.patch(f"/api/v1/items/{shop.fries}", json={"station": None}, headers=headers)
    assert cleared.json()["station"] is None

    display_id, token = await add_device(shop.services, shop.branch_id, DeviceKind.KITCHEN_DISPLAY)
    url = f"/api/v1/devices/{display_id}"
    moved = await client.patch(url, json={"station_id": grill["id"]}, headers=world.manager_a.headers)
    assert (moved.status_code, moved.json()["station_id"]) == (200, grill["id"])
    assert (await principal_of(shop.services, token)).station == "grill"
    kiosk = await client.patch(f"/api/v1/devices/{shop.kiosk.id}", json={"station_id": drinks["id"]}, headers=headers)
    assert kiosk.status_code == 422
    other = await client.post(
        STATIONS, json={"branch_id": world.branch_b, "code": "grill", "name": "Grill"}, headers=headers
    )
    elsewhere = await client.patch(url, json={"station_id": other.json()["id"]}, headers=headers)
    assert elsewhere.status_code == 422
    created = await client.post(
        "/api/v1/devices",
        json={"branch_id": shop.branch_id, "kind": "kitchen_display", "name": "bar", "station_id": drinks["id"]},
        headers=headers,
    )
    assert (created.status_code, created.json()["station_id"]) == (201, drinks["id"])

    # Deleting the grill detaches its display; the grill's lines go to the next default, drinks.
    assert (await client.delete(f"{STATIONS}/{grill['id']}", headers=headers)).status_code == 204
    assert (await client.get(url, headers=headers)).json()["station_id"] is None
    assert (await principal_of(shop.services, token)).station is None
    order = await shop.paid_order([{"item_id": shop.burger, "qty": 1}])
    assert [line["station"] for line in order["lines"]] == ["drinks"]
