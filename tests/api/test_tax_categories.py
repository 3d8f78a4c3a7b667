"""REST tax categories: CRUD, unique names, deletes refused while items or branch rates name a category, and what
a branch's rates and an item's category make a kiosk's cart pay in tax."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from persistence.tables import Branch, Category, Item
from server.services import Services
from tests.locks import until_blocked_or_done
from tests.shop import Shop
from tests.world import World

TAX_CATEGORIES = "/api/v1/tax-categories"
BRANCHES = "/api/v1/branches"
LIMIT_S = 10


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


def _rate(tax_category_id: int, mode: str, rate_bp: int) -> dict[str, Any]:
    return {"tax_category_id": tax_category_id, "service_mode": mode, "rate_bp": rate_bp}


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


async def test_delete_is_refused_while_a_branch_rates_the_category(client: httpx.AsyncClient, world: World) -> None:
    """`conflict` while any branch's rates name it, counting the branches; once the rates go, it goes."""
    food = await _create(client, world, "Food")
    drinks = await _create(client, world, "Drinks")
    for branch_id in (world.branch_a, world.branch_b):
        rates = [_rate(drinks["id"], "eat_in", 1900), _rate(food["id"], "takeaway", 700)]
        response = await client.patch(f"{BRANCHES}/{branch_id}", json={"tax_rates": rates}, headers=world.admin.headers)
        assert response.status_code == 200, response.text
    url = f"{TAX_CATEGORIES}/{food['id']}"
    refused = await client.delete(url, headers=world.admin.headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {
        "tax_category_id": food["id"],
        "branches": 2,
        "branch_ids": [world.branch_a, world.branch_b],
    }

    drinks_only = {"tax_rates": [_rate(drinks["id"], "eat_in", 1900)]}
    await client.patch(f"{BRANCHES}/{world.branch_a}", json=drinks_only, headers=world.admin.headers)
    assert (await client.delete(url, headers=world.admin.headers)).json()["error"]["details"]["branches"] == 1
    await client.patch(f"{BRANCHES}/{world.branch_b}", json={"tax_rates": []}, headers=world.admin.headers)
    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204
    assert (await client.get(f"{TAX_CATEGORIES}/{drinks['id']}", headers=world.admin.headers)).status_code == 200


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_delete_waits_for_a_branch_writing_a_rate_of_the_category(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A delete while a branch's new rate of the category is being written waits for it, and then sees it: the
    rate never names a category that is gone."""
    food = await _create(client, world, "Food")
    body = {"tax_rates": [_rate(food["id"], "takeaway", 700)]}
    async with services.db.session() as session:
        # The branch row held, so that the PATCH stops after checking its rates, before its write.
        await session.scalar(select(Branch).where(Branch.id == world.branch_a).with_for_update())
        patch = asyncio.create_task(
            client.patch(f"{BRANCHES}/{world.branch_a}", json=body, headers=world.admin.headers)
        )
        await until_blocked_or_done(services.db, patch, LIMIT_S)
        assert not patch.done(), patch.result().text
        delete = asyncio.create_task(client.delete(f"{TAX_CATEGORIES}/{food['id']}", headers=world.admin.headers))
        await until_blocked_or_done(services.db, delete, LIMIT_S, waiters=2)
        assert not delete.done(), delete.result().text
    patched, deleted = await asyncio.wait_for(asyncio.gather(patch, delete), LIMIT_S)
    assert patched.status_code == 200, patched.text
    assert deleted.status_code == 409, deleted.text
    assert deleted.json()["error"]["details"]["branches"] == 1
    assert (await client.get(f"{TAX_CATEGORIES}/{food['id']}", headers=world.admin.headers)).status_code == 200


async def test_rates_and_an_items_category_decide_a_carts_tax(
    client: httpx.AsyncClient, world: World, shop: Shop
) -> None:
    """An item of "food" at 1070 in a branch rating food 19 % eat-in and 7 % takeaway: the cart's tax is 171 eat-in
    and 70 once it is takeaway. Without a category, or with the rates changed, the same line is taxed otherwise."""
    admin = world.admin.headers
    food = (await client.post(TAX_CATEGORIES, json={"name": "food"}, headers=admin)).json()
    item_url = f"/api/v1/items/{shop.cola}"
    item = await client.patch(item_url, json={"price": 1070, "tax_category_id": food["id"]}, headers=admin)
    assert item.status_code == 200 and item.json()["tax_category_id"] == food["id"], item.text
    rates = [_rate(food["id"], "eat_in", 1900), _rate(food["id"], "takeaway", 700)]
    branch_url = f"{BRANCHES}/{shop.branch_id}"
    branch = await client.patch(branch_url, json={"tax_rate_bp": 1000, "tax_rates": rates}, headers=admin)
    assert branch.status_code == 200, branch.text

    cart = await shop.send(shop.kiosk, "cart.create", {})
    assert cart["service_mode"] == "eat_in"
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    assert (cart["total"], cart["tax"], cart["subtotal"]) == (1070, 171, 899)  # 1070 x 1900 / 11900 = 170.84
    assert cart["lines"][0]["tax_rate_bp"] == 1900
    assert cart["taxes"] == [{"rate_bp": 1900, "net": 899, "tax": 171, "total": 1070}]

    cart = await shop.send(shop.kiosk, "cart.set_service_mode", {"cart_id": cart["id"], "service_mode": "takeaway"})
    assert (cart["service_mode"], cart["total"], cart["tax"]) == ("takeaway", 1070, 70)  # 1070 x 700 / 10700
    assert cart["lines"][0]["tax_rate_bp"] == 700
    assert cart["taxes"] == [{"rate_bp": 700, "net": 1000, "tax": 70, "total": 1070}]

    # No rate for takeaway any more: the branch's default rate, 10 %.
    eat_in_only = {"tax_rates": rates[:1]}
    assert (await client.patch(branch_url, json=eat_in_only, headers=admin)).status_code == 200
    cart = await shop.send(
        shop.kiosk, "cart.update", {"cart_id": cart["id"], "line_id": cart["lines"][0]["id"], "qty": 1}
    )
    assert (cart["tax"], cart["lines"][0]["tax_rate_bp"]) == (97, 1000)  # 1070 x 1000 / 11000 = 97.27

    # Eat-in again, but the item has no category now: the default rate too.
    assert (await client.patch(item_url, json={"tax_category_id": None}, headers=admin)).status_code == 200
    cart = await shop.send(shop.kiosk, "cart.set_service_mode", {"cart_id": cart["id"], "service_mode": "eat_in"})
    assert (cart["tax"], cart["lines"][0]["tax_rate_bp"]) == (97, 1000)


async def test_a_new_cart_takes_the_branchs_first_service_mode(
    client: httpx.AsyncClient, world: World, shop: Shop
) -> None:
    """The first of the branch's `service_modes` is the mode a new cart starts in; one it does not offer is refused."""
    headers = world.admin.headers
    url = f"{BRANCHES}/{shop.branch_id}"
    assert (await client.patch(url, json={"service_modes": ["takeaway"]}, headers=headers)).status_code == 200
    cart = await shop.send(shop.kiosk, "cart.create", {})
    assert cart["service_mode"] == "takeaway"
    error = await shop.error(shop.kiosk, "cart.set_service_mode", {"cart_id": cart["id"], "service_mode": "eat_in"})
    assert error["code"] == "invalid"
