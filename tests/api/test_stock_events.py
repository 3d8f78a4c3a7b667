"""Menu events of stock changes: a first stock call puts the item on the branch's menu, changes say whether
it can still be ordered, refused ones emit nothing, and events are published after the commit.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from channels import names
from persistence.tables import OutboxEvent
from server.services import Services
from tests.api.menu_event_helpers import Catalogue, Outbox, bounded, call, menu_item, stock_url, updated
from tests.world import World


async def test_a_first_stock_call_puts_the_item_on_the_branch_menu(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """The call that makes a branch offer an item sends that branch the whole item; the next ones `stock.changed`."""
    url = stock_url(catalogue.salad)
    response = await call(client, "POST", url, world.staff_b.headers, branch_id=world.branch_b, mode="set", quantity=3)
    assert response.status_code == 200, response.text
    [event] = await outbox.new()
    assert event == updated(world.branch_b, await menu_item(services, world.branch_b, catalogue.salad))
    assert {
        key: event[2][key] for key in ("id", "category_id", "name", "price", "available", "stock", "orderable")
    } == {
        "id": catalogue.salad,
        "category_id": catalogue.mains,
        "name": "Salad",
        "price": 500,
        "available": True,
        "stock": 3,
        "orderable": True,
    }
    response = await call(client, "POST", url, world.staff_b.headers, branch_id=world.branch_b, mode="add", quantity=1)
    assert response.status_code == 200, response.text
    assert [event for _, event, _ in await outbox.new()] == ["stock.changed"]


async def test_stock_changes_say_whether_the_item_can_still_be_ordered(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """Stock 0 gives `stock.changed` with `orderable: false`; restocking or 86ing updates it; only the branch hears."""
    url, menu_a = stock_url(catalogue.burger), names.branch_menu(world.branch_a)
    burger_in_a = {"branch_id": world.branch_a, "item_id": catalogue.burger}
    steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"mode": "set", "quantity": 0}, {"available": True, "stock": 0, "orderable": False}),
        ({"mode": "add", "quantity": 2}, {"available": True, "stock": 2, "orderable": True}),
        ({"available": False}, {"available": False, "stock": 2, "orderable": False}),
        ({"mode": "set", "quantity": None, "available": True}, {"available": True, "stock": None, "orderable": True}),
    ]
    for body, expected in steps:
        response = await call(client, "POST", url, world.staff_a.headers, branch_id=world.branch_a, **body)
        assert response.status_code == 200, response.text
        assert await outbox.new() == [(menu_a, "stock.changed", {**burger_in_a, **expected})], body
        shown = await menu_item(services, world.branch_a, catalogue.burger)
        assert shown is not None
        assert {key: shown[key] for key in expected} == expected


async def test_refused_stock_changes_emit_nothing(
    client: httpx.AsyncClient, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """Overselling, another branch's stock, adding to unlimited stock and a deleted item all leave the outbox empty."""
    refused = [
        (catalogue.burger, world.staff_a, world.branch_a, {"mode": "add", "quantity": -6}, 409),
        (catalogue.burger, world.staff_b, world.branch_a, {"mode": "set", "quantity": 0}, 403),
        (catalogue.burger, world.staff_b, world.branch_b, {"mode": "add", "quantity": 1}, 422),
        (catalogue.salad, world.staff_a, world.branch_a, {"mode": "add", "quantity": -1}, 409),
        (catalogue.old, world.staff_a, world.branch_a, {"mode": "set", "quantity": 1}, 409),
    ]
    for item_id, actor, branch_id, body, status in refused:
        response = await call(client, "POST", stock_url(item_id), actor.headers, branch_id=branch_id, **body)
        assert response.status_code == status, response.text
    assert await outbox.new() == []


async def test_events_of_a_rest_call_are_published_after_its_commit(
    client: httpx.AsyncClient, world: World, catalogue: Catalogue, services: Services
) -> None:
    """The call itself publishes its events (no relay runs here): the outbox rows are marked published."""
    url = stock_url(catalogue.burger)
    response = await call(client, "POST", url, world.staff_a.headers, branch_id=world.branch_a, available=False)
    assert response.status_code == 200, response.text
    await services.relay.marked()
    async with services.db.session() as session:
        rows = (await bounded(session.scalars(select(OutboxEvent)))).all()
    assert [(row.event, row.published_at is not None) for row in rows] == [("stock.changed", True)]
