"""REST item reads and deletes: soft delete, filters, what a branch offers and may see, pagination, and who
may change items.
"""

from __future__ import annotations

import httpx
import pytest

from persistence.tables import Item, ItemAvailability
from server.services import Services
from tests.api.item_helpers import ITEMS, _burger, _category, _create
from tests.world import World


async def _offer(services: Services, item_id: int, branch_id: int, stock: int | None = None) -> None:
    async with services.db.session() as session:
        session.add(ItemAvailability(branch_id=branch_id, item_id=item_id, stock=stock))


async def test_delete_is_soft(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """A deleted item leaves the list but keeps its row, groups and id; it can no longer be edited."""
    item = await _create(client, world, _burger(await _category(services)))
    url = f"{ITEMS}/{item['id']}"
    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204

    assert (await client.get(ITEMS, headers=world.admin.headers)).json()["items"] == []
    listed = (await client.get(ITEMS, params={"include_deleted": "true"}, headers=world.admin.headers)).json()
    assert [i["id"] for i in listed["items"]] == [item["id"]]
    read = (await client.get(url, headers=world.admin.headers)).json()
    assert read["deleted_at"] is not None
    assert read["option_groups"] == item["option_groups"]
    assert (await client.patch(url, json={"price": 1}, headers=world.admin.headers)).status_code == 409
    async with services.db.session() as session:
        assert await session.get(Item, item["id"]) is not None


async def test_list_filters_by_category_and_name(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """category_id and q (a case-insensitive substring of the name, wildcards taken literally) narrow the list."""
    burgers, drinks = await _category(services), await _category(services, "Drinks")
    cheese = await _create(client, world, _burger(burgers, option_groups=[]))
    await _create(client, world, _burger(burgers, name="Veggie Burger", option_groups=[]))
    cola = await _create(client, world, _burger(drinks, name="Cola 100% sugar", option_groups=[]))

    def ids(response: httpx.Response) -> list[int]:
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["items"]]

    headers = world.staff_a.headers
    assert ids(await client.get(ITEMS, params={"category_id": drinks}, headers=headers)) == [cola["id"]]
    assert ids(await client.get(ITEMS, params={"q": "CHEESE"}, headers=headers)) == [cheese["id"]]
    assert ids(await client.get(ITEMS, params={"q": "0%"}, headers=headers)) == [cola["id"]]
    assert ids(await client.get(ITEMS, params={"q": "_"}, headers=headers)) == []


async def test_list_for_a_branch_shows_what_it_offers(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """With branch_id, only items the branch offers, each with its availability there."""
    category_id = await _category(services)
    offered = await _create(client, world, _burger(category_id, name="A", option_groups=[]))
    await _create(client, world, _burger(category_id, name="B", option_groups=[]))
    await _offer(services, offered["id"], world.branch_a, stock=7)

    response = await client.get(ITEMS, params={"branch_id": world.branch_a}, headers=world.staff_a.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 1
    availability = page["items"][0]["availability"]
    assert (availability["branch_id"], availability["available"], availability["stock"]) == (world.branch_a, True, 7)
    everything = (await client.get(ITEMS, headers=world.staff_a.headers)).json()
    assert [i["availability"] for i in everything["items"]] == [None, None]


@pytest.mark.parametrize("actor", ["staff_b", "manager_b"])
async def test_another_branch_list_is_forbidden(
    client: httpx.AsyncClient, services: Services, world: World, actor: str
) -> None:
    """Staff and managers may not list the offer of a branch other than theirs."""
    response = await client.get(ITEMS, params={"branch_id": world.branch_a}, headers=getattr(world, actor).headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_read_shows_availability_of_the_branches_the_caller_sees(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Admins see every branch's availability of an item; branch users only their own branch's."""
    item = await _create(client, world, _burger(await _category(services)))
    await _offer(services, item["id"], world.branch_a, stock=3)
    await _offer(services, item["id"], world.branch_b)
    url = f"{ITEMS}/{item['id']}"

    admin = (await client.get(url, headers=world.admin.headers)).json()["availability"]
    assert [(a["branch_id"], a["stock"]) for a in admin] == [(world.branch_a, 3), (world.branch_b, None)]
    staff_b = (await client.get(url, headers=world.staff_b.headers)).json()["availability"]
    assert [(a["branch_id"], a["stock"]) for a in staff_b] == [(world.branch_b, None)]


async def test_list_paginates(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """Items come in position order, cut by limit and offset, with the total."""
    category_id = await _category(services)
    ids = [
        (await _create(client, world, _burger(category_id, name=f"I{i}", position=i, option_groups=[])))["id"]
        for i in range(4)
    ]
    page = (await client.get(ITEMS, params={"limit": 2, "offset": 1}, headers=world.admin.headers)).json()
    assert [i["id"] for i in page["items"]] == ids[1:3]
    assert page["total"] == 4


@pytest.mark.parametrize("actor", ["manager_a", "staff_a"])
async def test_only_menu_writers_change_items(
    client: httpx.AsyncClient, services: Services, world: World, actor: str
) -> None:
    """Managers and staff may not create, edit or delete items."""
    headers = getattr(world, actor).headers
    category_id = await _category(services)
    item = await _create(client, world, _burger(category_id))
    url = f"{ITEMS}/{item['id']}"
    assert (await client.post(ITEMS, json=_burger(category_id), headers=headers)).status_code == 403
    assert (await client.patch(url, json={"price": 1}, headers=headers)).status_code == 403
    assert (await client.delete(url, headers=headers)).status_code == 403
    assert (await client.get(url, headers=headers)).json()["price"] == 650


async def test_unknown_item_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    """Reading, editing or deleting an item that does not exist is `not_found`."""
    url = f"{ITEMS}/999"
    for response in (
        await client.get(url, headers=world.admin.headers),
        await client.patch(url, json={"price": 1}, headers=world.admin.headers),
        await client.delete(url, headers=world.admin.headers),
    ):
        assert response.status_code == 404, response.text
