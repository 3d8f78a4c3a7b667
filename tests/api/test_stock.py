"""REST stock: per-branch availability and stock, set or added atomically, never below zero, branch-scoped."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from persistence.base import utcnow
from persistence.tables import Category, Item, ItemAvailability
from server.api.stock import MAX_STOCK
from server.services import Services
from tests.world import World


async def _item(services: Services, *, deleted: bool = False) -> int:
    async with services.db.session() as session:
        category = Category(name="Burgers")
        session.add(category)
        await session.flush()
        item = Item(category_id=category.id, name="Burger", price=500, deleted_at=utcnow() if deleted else None)
        session.add(item)
        await session.flush()
        return item.id


def _url(item_id: int) -> str:
    return f"/api/v1/items/{item_id}/stock"


async def _change(client: httpx.AsyncClient, item_id: int, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(_url(item_id), json=body, headers=headers)


async def _stock(client: httpx.AsyncClient, world: World, item_id: int, branch_id: int) -> dict[str, Any] | None:
    rows = (await client.get(_url(item_id), headers=world.admin.headers)).json()["items"]
    return next((row for row in rows if row["branch_id"] == branch_id), None)


async def test_first_stock_call_makes_the_branch_offer_the_item(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Setting stock in a branch that does not offer the item yet creates its availability row."""
    item_id = await _item(services)
    assert await _stock(client, world, item_id, world.branch_a) is None
    response = await _change(client, item_id, world.staff_a.headers, branch_id=world.branch_a, mode="set", quantity=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["branch_id"], body["item_id"], body["available"], body["stock"]) == (
        world.branch_a,
        item_id,
        True,
        10,
    )
    assert body["updated_at"]
    listed = await client.get("/api/v1/items", params={"branch_id": world.branch_a}, headers=world.staff_a.headers)
    assert [i["id"] for i in listed.json()["items"]] == [item_id]


async def test_add_and_write_off(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """`add` adds a positive quantity and writes a negative one off; a first `add` starts from zero."""
    item_id = await _item(services)
    headers = world.manager_a.headers
    first = await _change(client, item_id, headers, branch_id=world.branch_a, mode="add", quantity=5)
    assert first.json()["stock"] == 5
    more = await _change(client, item_id, headers, branch_id=world.branch_a, mode="add", quantity=3)
    assert more.json()["stock"] == 8
    assert more.json()["updated_at"] > first.json()["updated_at"]
    off = await _change(client, item_id, headers, branch_id=world.branch_a, mode="add", quantity=-8)
    assert off.status_code == 200, off.text
    assert off.json()["stock"] == 0


async def test_stock_never_goes_below_zero(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """Writing off more than is left is `conflict` with the current stock, and changes nothing."""
    item_id = await _item(services)
    headers = world.staff_a.headers
    await _change(client, item_id, headers, branch_id=world.branch_a, mode="set", quantity=2)
    response = await _change(client, item_id, headers, branch_id=world.branch_a, mode="add", quantity=-3)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert (error["details"]["stock"], error["details"]["quantity"]) == (2, -3)
    assert (await _stock(client, world, item_id, world.branch_a) or {})["stock"] == 2


async def test_a_first_write_off_leaves_nothing_behind(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """A refused first call does not make the branch offer the item."""
    item_id = await _item(services)
    response = await _change(client, item_id, world.staff_a.headers, branch_id=world.branch_a, mode="add", quantity=-1)
    assert response.status_code == 409
    assert response.json()["error"]["details"]["stock"] == 0
    assert await _stock(client, world, item_id, world.branch_a) is None


async def test_concurrent_write_offs_cannot_oversell(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Racing write-offs of one each on a stock of 3: exactly three win, the rest get `conflict`, stock ends at 0."""
    item_id = await _item(services)
    headers = world.staff_a.headers
    await _change(client, item_id, headers, branch_id=world.branch_a, mode="set", quantity=3)
    responses = await asyncio.wait_for(
        asyncio.gather(
            *(_change(client, item_id, headers, branch_id=world.branch_a, mode="add", quantity=-1) for _ in range(6))
        ),
        timeout=30,
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 409, 409, 409]
    assert (await _stock(client, world, item_id, world.branch_a) or {})["stock"] == 0


async def test_the_database_refuses_a_negative_stock(services: Services, world: World) -> None:
    """The check constraint is the last line of defence: a direct negative write fails."""
    item_id = await _item(services)
    async with services.db.session() as session:
        session.add(ItemAvailability(branch_id=world.branch_a, item_id=item_id, stock=1))
    with pytest.raises(IntegrityError):
        async with services.db.session() as session:
            await session.execute(update(ItemAvailability).values(stock=-1))


async def test_unlimited_stock(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """`set` with null makes stock unlimited; adding to it is `invalid`; setting a number limits it again."""
    item_id = await _item(services)
    headers = world.staff_a.headers
    unlimited = await _change(client, item_id, headers, branch_id=world.branch_a, mode="set", quantity=None)
    assert unlimited.status_code == 200, unlimited.text
    assert unlimited.json()["stock"] is None
    added = await _change(client, item_id, headers, branch_id=world.branch_a, mode="add", quantity=1)
    assert added.status_code == 422
    assert added.json()["error"]["details"]["errors"][0]["type"] == "stock_unlimited"
    limited = await _change(client, item_id, headers, branch_id=world.branch_a, mode="set", quantity=0)
    assert limited.json()["stock"] == 0


async def test_available_toggles_86_without_touching_stock(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """`available` alone 86es an item and brings it back; the stock stays; with a mode both change."""
    item_id = await _item(services)
    headers = world.staff_a.headers
    await _change(client, item_id, headers, branch_id=world.branch_a, mode="set", quantity=4)
    off = await _change(client, item_id, headers, branch_id=world.branch_a, available=False)
    assert off.status_code == 200, off.text
    assert (off.json()["available"], off.json()["stock"]) == (False, 4)
    both = await _change(client, item_id, headers, branch_id=world.branch_a, mode="add", quantity=1, available=True)
    assert (both.json()["available"], both.json()["stock"]) == (True, 5)


async def test_stock_may_not_exceed_its_maximum(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """Adding past the maximum stock is `conflict`; a quantity beyond it is `invalid`."""
    item_id = await _item(services)
    headers = world.staff_a.headers
    await _change(client, item_id, headers, branch_id=world.branch_a, mode="set", quantity=MAX_STOCK)
    over = await _change(client, item_id, headers, branch_id=world.branch_a, mode="add", quantity=1)
    assert over.status_code == 409
    assert over.json()["error"]["details"]["max_stock"] == MAX_STOCK
    huge = await _change(client, item_id, headers, branch_id=world.branch_a, mode="set", quantity=MAX_STOCK + 1)
    assert huge.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "set"}, "quantity"),
        ({"mode": "set", "quantity": -1}, "quantity"),
        ({"mode": "add", "quantity": None}, "quantity"),
        ({"mode": "add"}, "quantity"),
        ({"quantity": 3}, "mode"),
        ({}, "available"),
        ({"mode": "add", "quantity": 1.5}, "quantity"),
        ({"mode": "add", "quantity": "2"}, "quantity"),
        ({"mode": "remove", "quantity": 2}, "mode"),
        ({"mode": "add", "quantity": 1, "branch_id": 999}, "branch_id"),
        ({"mode": "add", "quantity": 1, "extra": True}, "extra"),
    ],
)
async def test_bad_stock_changes_are_invalid(
    client: httpx.AsyncClient, services: Services, world: World, body: dict[str, Any], field: str
) -> None:
    """Mode and quantity must agree, quantities are whole numbers, the branch must exist."""
    item_id = await _item(services)
    response = await client.post(_url(item_id), json={"branch_id": world.branch_a, **body}, headers=world.admin.headers)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["error"]["details"]["errors"]] == [field]


@pytest.mark.parametrize("actor", ["staff_b", "manager_b"])
async def test_another_branch_may_not_change_stock(
    client: httpx.AsyncClient, services: Services, world: World, actor: str
) -> None:
    """Staff and managers of branch b get 403 on branch a's stock, and nothing changes."""
    item_id = await _item(services)
    await _change(client, item_id, world.staff_a.headers, branch_id=world.branch_a, mode="set", quantity=1)
    headers = getattr(world, actor).headers
    for body in ({"mode": "set", "quantity": 9}, {"available": False}):
        response = await _change(client, item_id, headers, branch_id=world.branch_a, **body)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    row = await _stock(client, world, item_id, world.branch_a) or {}
    assert (row["stock"], row["available"]) == (1, True)


async def test_stock_list_shows_the_branches_the_caller_may_see(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Admins see every branch's row, by branch; branch users only their own; pages work."""
    item_id = await _item(services)
    await _change(client, item_id, world.staff_a.headers, branch_id=world.branch_a, mode="set", quantity=1)
    await _change(client, item_id, world.staff_b.headers, branch_id=world.branch_b, mode="set", quantity=2)

    admin = (await client.get(_url(item_id), headers=world.admin.headers)).json()
    assert [(r["branch_id"], r["stock"]) for r in admin["items"]] == [(world.branch_a, 1), (world.branch_b, 2)]
    second = (await client.get(_url(item_id), params={"offset": 1}, headers=world.admin.headers)).json()
    assert ([r["branch_id"] for r in second["items"]], second["total"]) == ([world.branch_b], 2)
    manager_b = (await client.get(_url(item_id), headers=world.manager_b.headers)).json()
    assert [r["branch_id"] for r in manager_b["items"]] == [world.branch_b]


async def test_stock_of_missing_or_deleted_items(client: httpx.AsyncClient, services: Services, world: World) -> None:
    """An unknown item is `not_found`; a deleted one takes no stock (`conflict`)."""
    missing = await _change(client, 999, world.admin.headers, branch_id=world.branch_a, mode="set", quantity=1)
    assert missing.status_code == 404
    assert (await client.get(_url(999), headers=world.admin.headers)).status_code == 404
    deleted = await _item(services, deleted=True)
    response = await _change(client, deleted, world.admin.headers, branch_id=world.branch_a, mode="set", quantity=1)
    assert response.status_code == 409
