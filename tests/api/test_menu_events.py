"""Menu events: admin REST and stock changes tell exactly the branches concerned, and `menu.get` is the snapshot.

Events are read from the outbox, where the REST call's transaction wrote them; the live
tests check that they reach the kiosks of a real server, and that `menu.get` answers a
kiosk exactly what its `branch:{b}:menu` snapshot showed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select

from channels import names
from channels.client import DeviceClient
from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Category, Item, ItemAvailability, OptionChoice, OptionGroup, OutboxEvent
from server.payloads.menu import branch_menu
from server.services import Services
from tests.live import add_device, live_server
from tests.world import World

TIMEOUT_S = 10
ITEMS = "/api/v1/items"
T = TypeVar("T")
Event = tuple[str, str, dict[str, Any]]


async def bounded(step: Awaitable[T]) -> T:
    """Await one step of a test, failing it rather than hanging."""
    return await asyncio.wait_for(step, TIMEOUT_S)


@dataclass
class Catalogue:
    """Mains (burger offered by a and b, soup by a, salad by nobody, old: deleted) and Drinks (cola offered by b)."""

    mains: int
    drinks: int
    burger: int
    soup: int
    salad: int
    old: int
    cola: int
    size: int
    regular: int


@pytest.fixture
async def catalogue(services: Services, world: World) -> Catalogue:
    """The catalogue, written straight to the database (so the outbox starts empty)."""
    async with services.db.session() as session:
        mains, drinks = Category(name="Mains", position=0), Category(name="Drinks", position=1)
        session.add_all([mains, drinks])
        await session.flush()
        regular = OptionChoice(name="Regular", price_delta=0, is_default=True, position=0)
        size = OptionGroup(
            name="Size",
            min_select=1,
            max_select=1,
            choices=[regular, OptionChoice(name="Large", price_delta=150, position=1)],
        )
        burger = Item(category_id=mains.id, name="Burger", price=900, option_groups=[size])
        soup = Item(category_id=mains.id, name="Soup", price=450, position=1)
        salad = Item(category_id=mains.id, name="Salad", price=500, position=2)
        old = Item(category_id=mains.id, name="Old", price=100, deleted_at=utcnow())
        cola = Item(category_id=drinks.id, name="Cola", price=300)
        session.add_all([burger, soup, salad, old, cola])
        await session.flush()
        session.add_all(
            [
                ItemAvailability(branch_id=world.branch_a, item_id=burger.id, stock=5),
                ItemAvailability(branch_id=world.branch_b, item_id=burger.id, stock=None),
                ItemAvailability(branch_id=world.branch_a, item_id=soup.id, stock=None),
                ItemAvailability(branch_id=world.branch_a, item_id=old.id, stock=None),
                ItemAvailability(branch_id=world.branch_b, item_id=cola.id, stock=None),
            ]
        )
        return Catalogue(mains.id, drinks.id, burger.id, soup.id, salad.id, old.id, cola.id, size.id, regular.id)


class Outbox:
    """The events written since the last look, oldest first."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._seen = 0

    async def new(self) -> list[Event]:
        """Channel, event and data of each outbox row written since the last call."""
        async with self._services.db.session() as session:
            statement = select(OutboxEvent).where(OutboxEvent.id > self._seen).order_by(OutboxEvent.id)
            rows = (await bounded(session.scalars(statement))).all()
        if rows:
            self._seen = rows[-1].id
        return [(row.channel, row.event, row.data) for row in rows]


@pytest.fixture
def outbox(services: Services) -> Outbox:
    """The outbox of the test's database."""
    return Outbox(services)


async def menu_item(services: Services, branch_id: int, item_id: int) -> dict[str, Any] | None:
    """The item as the branch's menu snapshot shows it now, None when it is not on that menu."""
    async with services.db.session() as session:
        menu = await bounded(branch_menu(session, branch_id))
    items = [item for category in menu["categories"] for item in category["items"]]
    return next((item for item in items if item["id"] == item_id), None)


def updated(branch_id: int, item: dict[str, Any] | None) -> Event:
    """A `menu.item_updated` event carrying `item` on the branch's menu channel."""
    assert item is not None
    return (names.branch_menu(branch_id), "menu.item_updated", item)


def removed(branch_id: int, item_id: int) -> Event:
    """A `menu.item_removed` event on the branch's menu channel."""
    return (names.branch_menu(branch_id), "menu.item_removed", {"branch_id": branch_id, "item_id": item_id})


async def call(
    client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    """One REST call, with `body` as its JSON when given."""
    return await bounded(client.request(method, url, headers=headers, json=body or None))


# -- items -------------------------------------------------------------------------------


async def test_an_item_change_reaches_every_branch_offering_it(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """A PATCH sends each offering branch the whole item as its menu now shows it, with its own stock."""
    changes = {
        **{"name": "Big burger", "price": 950, "image_url": "https://img.example.com/b.png", "description": "Two"},
        **{"allergens": ["gluten", "milk"], "calories": 610},
    }
    response = await call(client, "PATCH", f"{ITEMS}/{catalogue.burger}", world.admin.headers, **changes)
    assert response.status_code == 200, response.text
    in_a = await menu_item(services, world.branch_a, catalogue.burger)
    in_b = await menu_item(services, world.branch_b, catalogue.burger)
    assert await outbox.new() == [updated(world.branch_a, in_a), updated(world.branch_b, in_b)]
    assert in_a is not None and in_b is not None
    assert {key: in_a[key] for key in changes} == changes
    assert (in_a["category_id"], in_a["available"], in_a["stock"], in_a["orderable"]) == (
        catalogue.mains,
        True,
        5,
        True,
    )
    assert (in_b["stock"], in_b["orderable"]) == (None, True)
    assert in_a["option_groups"][0]["choices"][1] == {
        "id": in_a["option_groups"][0]["choices"][1]["id"],
        "name": "Large",
        "price_delta": 150,
        "is_default": False,
        "allergens": [],
        "calories": None,
        "translations": {},
    }


async def test_moving_an_item_to_another_category_names_the_new_one(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """The event of a move carries the new `category_id`; a branch not offering the item hears nothing."""
    response = await call(
        client, "PATCH", f"{ITEMS}/{catalogue.soup}", world.admin.headers, category_id=catalogue.drinks
    )
    assert response.status_code == 200, response.text
    [event] = await outbox.new()
    assert event == updated(world.branch_a, await menu_item(services, world.branch_a, catalogue.soup))
    assert event[2]["category_id"] == catalogue.drinks


async def test_option_groups_are_announced_as_stored_in_display_order(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """New groups sent before old ones still come out by position, with ids, limits, deltas, defaults, allergens and
    calories."""
    groups = [
        {
            "name": "Extras",
            "max_select": 2,
            "position": 1,
            "choices": [
                {"name": "Bacon", "price_delta": 120},
                {"name": "Cheese", "price_delta": 80, "position": 1, "allergens": ["milk"], "calories": 110},
            ],
        },
        {
            "id": catalogue.size,
            "name": "Size",
            "min_select": 1,
            "max_select": 1,
            "position": 0,
            "choices": [{"id": catalogue.regular, "name": "Regular", "is_default": True}],
        },
    ]
    response = await call(client, "PATCH", f"{ITEMS}/{catalogue.burger}", world.admin.headers, option_groups=groups)
    assert response.status_code == 200, response.text
    events = await outbox.new()
    assert [(channel, event) for channel, event, _ in events] == [
        (names.branch_menu(world.branch_a), "menu.item_updated"),
        (names.branch_menu(world.branch_b), "menu.item_updated"),
    ]
    announced = events[0][2]["option_groups"]
    assert [(g["name"], g["min_select"], g["max_select"]) for g in announced] == [("Size", 1, 1), ("Extras", 0, 2)]
    assert announced[0]["id"] == catalogue.size
    assert announced[0]["choices"] == [
        {
            "id": catalogue.regular,
            "name": "Regular",
            "price_delta": 0,
            "is_default": True,
            "allergens": [],
            "calories": None,
            "translations": {},
        }
    ]
    assert [(c["name"], c["price_delta"], c["allergens"], c["calories"]) for c in announced[1]["choices"]] == [
        ("Bacon", 120, [], None),
        ("Cheese", 80, ["milk"], 110),
    ]
    assert events[0][2] == await menu_item(services, world.branch_a, catalogue.burger)


async def test_deleting_an_item_removes_it_from_every_branch_offering_it(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """DELETE sends `menu.item_removed` to each offering branch once; deleting it again sends nothing."""
    url = f"{ITEMS}/{catalogue.burger}"
    assert (await call(client, "DELETE", url, world.admin.headers)).status_code == 204
    assert await outbox.new() == [removed(world.branch_a, catalogue.burger), removed(world.branch_b, catalogue.burger)]
    assert await menu_item(services, world.branch_a, catalogue.burger) is None
    assert (await call(client, "DELETE", url, world.admin.headers)).status_code == 204
    assert (await call(client, "PATCH", url, world.admin.headers, price=1)).status_code == 409
    assert await outbox.new() == []


async def test_items_no_branch_offers_are_announced_to_nobody(
    client: httpx.AsyncClient, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """Creating an item, or changing or deleting one that no branch offers, emits nothing."""
    body = {"category_id": catalogue.mains, "name": "Wrap", "price": 700}
    assert (await call(client, "POST", ITEMS, world.admin.headers, **body)).status_code == 201
    salad = f"{ITEMS}/{catalogue.salad}"
    assert (await call(client, "PATCH", salad, world.admin.headers, price=550)).status_code == 200
    assert (await call(client, "DELETE", salad, world.admin.headers)).status_code == 204
    assert await outbox.new() == []


async def test_a_refused_item_change_emits_nothing(
    client: httpx.AsyncClient, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """An invalid PATCH, or one by a user who may not write the menu, leaves the outbox empty."""
    url = f"{ITEMS}/{catalogue.burger}"
    assert (await call(client, "PATCH", url, world.admin.headers, category_id=999_999)).status_code == 422
    assert (await call(client, "PATCH", url, world.manager_a.headers, price=1)).status_code == 403
    assert await outbox.new() == []


# -- categories --------------------------------------------------------------------------


async def test_a_category_change_announces_each_of_its_offered_items(
    client: httpx.AsyncClient, services: Services, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """Renaming or moving a category re-sends its items to the branches offering them; deleted items stay out."""
    url = f"/api/v1/categories/{catalogue.mains}"
    response = await call(client, "PATCH", url, world.admin.headers, name="Hot food", position=5)
    assert response.status_code == 200, response.text
    assert await outbox.new() == [
        updated(world.branch_a, await menu_item(services, world.branch_a, catalogue.burger)),
        updated(world.branch_b, await menu_item(services, world.branch_b, catalogue.burger)),
        updated(world.branch_a, await menu_item(services, world.branch_a, catalogue.soup)),
    ]


async def test_deleting_a_category_announces_nothing_more(
    client: httpx.AsyncClient, world: World, catalogue: Catalogue, outbox: Outbox
) -> None:
    """A category is deleted only once its items are, and each of them was removed from the menus then."""
    for item_id in (catalogue.burger, catalogue.soup, catalogue.salad):
        assert (await call(client, "DELETE", f"{ITEMS}/{item_id}", world.admin.headers)).status_code == 204
    assert await outbox.new() == [
        removed(world.branch_a, catalogue.burger),
        removed(world.branch_b, catalogue.burger),
        removed(world.branch_a, catalogue.soup),
    ]
    url = f"/api/v1/categories/{catalogue.mains}"
    assert (await call(client, "DELETE", url, world.admin.headers)).status_code == 204
    assert await outbox.new() == []


# -- stock -------------------------------------------------------------------------------


def stock_url(item_id: int) -> str:
    """The stock route of an item."""
    return f"{ITEMS}/{item_id}/stock"


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


# -- over a real server ------------------------------------------------------------------


async def test_a_sold_out_item_disappears_from_every_kiosk_of_its_branch_at_once(
    services: Services, world: World, catalogue: Catalogue
) -> None:
    """Both kiosks of branch a hear the stock running out; branch b's kiosk hears only its own menu's changes."""
    tokens = [
        (await add_device(services, branch_id, DeviceKind.KIOSK))[1]
        for branch_id in (world.branch_a, world.branch_a, world.branch_b)
    ]
    menu_a, menu_b = names.branch_menu(world.branch_a), names.branch_menu(world.branch_b)
    async with (
        live_server(services) as live,
        DeviceClient(live.ws, tokens[0]) as kiosk_a1,
        DeviceClient(live.ws, tokens[1]) as kiosk_a2,
        DeviceClient(live.ws, tokens[2]) as kiosk_b,
        httpx.AsyncClient(base_url=live.http, timeout=TIMEOUT_S) as http,
    ):
        body = {"branch_id": world.branch_a, "mode": "set", "quantity": 0}
        response = await http.post(stock_url(catalogue.burger), json=body, headers=world.staff_a.headers)
        assert response.status_code == 200, response.text
        for kiosk in (kiosk_a1, kiosk_a2):
            event = await kiosk.next_event(menu_a, "stock.changed", timeout=TIMEOUT_S)
            assert (event["data"]["item_id"], event["data"]["orderable"]) == (catalogue.burger, False)
        response = await http.patch(f"{ITEMS}/{catalogue.burger}", json={"price": 990}, headers=world.admin.headers)
        assert response.status_code == 200, response.text
        first_on_b = await kiosk_b.next_event(menu_b, timeout=TIMEOUT_S)
        assert (first_on_b["seq"], first_on_b["event"]) == (1, "menu.item_updated")
        assert (first_on_b["data"]["price"], first_on_b["data"]["orderable"]) == (990, True)
        on_a = await kiosk_a1.next_event(menu_a, timeout=TIMEOUT_S)
        assert (on_a["seq"], on_a["event"], on_a["data"]["orderable"]) == (2, "menu.item_updated", False)


async def test_menu_get_answers_what_the_menu_snapshot_shows(
    services: Services, world: World, catalogue: Catalogue
) -> None:
    """A kiosk's `menu.get` reply is its menu snapshot's data; a terminal is refused, an admin must name a branch."""
    _, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    _, kitchen_token = await add_device(services, world.branch_a, DeviceKind.KITCHEN_DISPLAY)
    _, terminal_token = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    admin_token = world.admin.headers["Authorization"].split()[1]
    menu_a = names.branch_menu(world.branch_a)
    async with live_server(services) as live, DeviceClient(live.ws, kiosk_token) as kiosk:
        snapshot = await kiosk.next_frame(timeout=TIMEOUT_S)
        assert (snapshot["type"], snapshot["channel"]) == ("snapshot", menu_a)
        assert [item["id"] for item in snapshot["data"]["categories"][0]["items"]] == [catalogue.burger, catalogue.soup]
        assert await kiosk.command("menu.get", {}, timeout=TIMEOUT_S) == snapshot["data"]
        async with DeviceClient(live.ws, kitchen_token) as kitchen:
            assert await kitchen.command("menu.get", {}, timeout=TIMEOUT_S) == snapshot["data"]
        async with DeviceClient(live.ws, terminal_token) as terminal:
            refused = await terminal.request("menu.get", {}, timeout=TIMEOUT_S)
            assert (refused["ok"], refused["error"]["code"]) == (False, "forbidden")
        async with DeviceClient(live.ws, admin_token) as admin:
            refused = await admin.request("menu.get", {}, timeout=TIMEOUT_S)
            assert (refused["ok"], refused["error"]["code"]) == (False, "invalid")
            named = await admin.command("menu.get", {"branch_id": world.branch_a}, timeout=TIMEOUT_S)
            assert named == snapshot["data"]
