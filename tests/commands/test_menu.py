"""Menu commands (server/commands/menu.py): `menu.get` reads a branch's menu; `item.set_available` 86es an item."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update

from channels import names
from channels.frames import parse_client_frame
from persistence.enums import DeviceKind
from persistence.tables import Category, CommandLogEntry, Item, ItemAvailability, OutboxEvent
from server.auth.principals import Principal, authenticate
from server.commands import command_registry
from server.commands.router import execute
from server.payloads.menu import branch_menu
from server.services import Services
from tests.shop import Shop
from tests.world import Actor, World

COMMANDS = command_registry()


LIMIT_S = 10


@dataclass
class Menu:
    """An item offered by branch a (on, 5 left) and one that no branch offers."""

    offered: int
    not_offered: int


@pytest.fixture
async def menu(services: Services, world: World) -> Menu:
    """Two items of the catalogue; only the first is offered, by branch a."""
    async with services.db.session() as session:
        mains = Category(name="Mains")
        session.add(mains)
        await session.flush()
        burger, soup = (
            Item(category_id=mains.id, name="Burger", price=900),
            Item(category_id=mains.id, name="Soup", price=450),
        )
        session.add_all([burger, soup])
        await session.flush()
        session.add(ItemAvailability(branch_id=world.branch_a, item_id=burger.id, available=True, stock=5))
        return Menu(offered=burger.id, not_offered=soup.id)


async def principal_of(services: Services, actor: Actor) -> Principal:
    """The principal of a world actor, authenticated from its token as the socket does."""
    token = actor.headers["Authorization"].split()[1]
    async with services.db.session() as session:
        return await authenticate(session, services.tokens, token)


async def set_available(
    services: Services, principal: Principal, data: dict[str, Any], command_id: str = "c1"
) -> tuple[dict[str, Any], str]:
    """Send `item.set_available` through the app's registry; returns the parsed reply and the outcome."""
    frame = parse_client_frame(json.dumps({"type": "item.set_available", "id": command_id, "data": data}))
    text, outcome = await asyncio.wait_for(execute(COMMANDS, services, principal, frame), LIMIT_S)
    return json.loads(text), outcome


async def offer(services: Services, branch_id: int, item_id: int) -> tuple[bool, int | None]:
    """Whether the branch has the item on, and its stock."""
    async with services.db.session() as session:
        row = await session.get(ItemAvailability, (branch_id, item_id))
    assert row is not None
    return row.available, row.stock


async def outbox(services: Services) -> list[tuple[str, str, dict[str, Any]]]:
    """Channel, event and data of every outbox row, oldest first."""
    async with services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [(row.channel, row.event, row.data) for row in rows]


async def test_staff_86_an_item_of_their_branch_and_bring_it_back(services: Services, world: World, menu: Menu) -> None:
    """Staff turn the item off and on again; stock is untouched and each change emits `stock.changed`."""
    staff = await principal_of(services, world.staff_a)
    off, outcome = await set_available(services, staff, {"item_id": menu.offered, "available": False}, "off")
    expected_off = {
        "branch_id": world.branch_a,
        "item_id": menu.offered,
        "available": False,
        "stock": 5,
        "orderable": False,
    }
    assert outcome == "ok"
    assert off["data"] == expected_off
    assert await offer(services, world.branch_a, menu.offered) == (False, 5)
    on, _ = await set_available(services, staff, {"item_id": menu.offered, "available": True}, "on")
    assert (on["data"]["available"], on["data"]["orderable"]) == (True, True)
    assert await offer(services, world.branch_a, menu.offered) == (True, 5)
    channel = names.branch_menu(world.branch_a)
    assert await outbox(services) == [
        (channel, "stock.changed", expected_off),
        (channel, "stock.changed", {**expected_off, "available": True, "orderable": True}),
    ]


async def test_an_item_back_on_with_no_stock_left_is_not_orderable(
    services: Services, world: World, menu: Menu
) -> None:
    """Bringing back an item whose counted stock is 0 says `available: true` but `orderable: false`."""
    async with services.db.session() as session:
        await session.execute(update(ItemAvailability).values(stock=0))
    staff = await principal_of(services, world.staff_a)
    reply, _ = await set_available(services, staff, {"item_id": menu.offered, "available": True})
    assert (reply["data"]["available"], reply["data"]["stock"], reply["data"]["orderable"]) == (True, 0, False)
    [(_, _, data)] = await outbox(services)
    assert data == reply["data"]


async def test_staff_of_another_branch_are_forbidden(services: Services, world: World, menu: Menu) -> None:
    """Naming a branch that is not theirs is `forbidden`, and nothing changes or is announced."""
    staff_b = await principal_of(services, world.staff_b)
    data = {"item_id": menu.offered, "available": False, "branch_id": world.branch_a}
    reply, outcome = await set_available(services, staff_b, data)
    assert outcome == "forbidden"
    assert reply["error"]["code"] == "forbidden"
    assert await offer(services, world.branch_a, menu.offered) == (True, 5)
    assert await outbox(services) == []


async def test_an_admin_must_name_the_branch(services: Services, world: World, menu: Menu) -> None:
    """A chain-wide user gets `invalid` naming `branch_id` without one, and may act in any branch with one."""
    admin = await principal_of(services, world.admin)
    reply, outcome = await set_available(services, admin, {"item_id": menu.offered, "available": False}, "a1")
    assert outcome == "invalid"
    assert [error["field"] for error in reply["error"]["details"]["errors"]] == ["branch_id"]
    data = {"item_id": menu.offered, "available": False, "branch_id": world.branch_a}
    reply, outcome = await set_available(services, admin, data, "a2")
    assert outcome == "ok"
    assert await offer(services, world.branch_a, menu.offered) == (False, 5)


async def test_an_item_the_branch_does_not_offer_is_not_found(services: Services, world: World, menu: Menu) -> None:
    """An item outside the branch's offer, or no item at all, is `not_found` and announces nothing."""
    staff = await principal_of(services, world.staff_a)
    for command_id, item_id in (("c1", menu.not_offered), ("c2", 999_999)):
        reply, outcome = await set_available(services, staff, {"item_id": item_id, "available": False}, command_id)
        assert outcome == "not_found"
        assert reply["error"]["details"] == {"item_id": item_id}
    assert await outbox(services) == []


async def test_devices_may_not_86_items(services: Services, world: World, menu: Menu) -> None:
    """The command is for staff and up: a kiosk gets `forbidden`."""
    kiosk = Principal(kind="device", id=7, branch_id=world.branch_a, device_kind=DeviceKind.KIOSK)
    reply, outcome = await set_available(services, kiosk, {"item_id": menu.offered, "available": False})
    assert outcome == "forbidden"
    assert reply["error"]["code"] == "forbidden"
    assert await offer(services, world.branch_a, menu.offered) == (True, 5)


# -- menu.get ----------------------------------------------------------------------------


async def get_menu(
    services: Services, principal: Principal, data: dict[str, Any], command_id: str = "m1"
) -> tuple[dict[str, Any], str]:
    """Send `menu.get` through the app's registry; returns the parsed reply and the outcome."""
    frame = parse_client_frame(json.dumps({"type": "menu.get", "id": command_id, "data": data}))
    text, outcome = await asyncio.wait_for(execute(COMMANDS, services, principal, frame), LIMIT_S)
    return json.loads(text), outcome


async def snapshot(services: Services, branch_id: int) -> dict[str, Any]:
    """The `branch:{b}:menu` snapshot data, as the socket would send it."""
    async with services.db.session() as session:
        return await asyncio.wait_for(branch_menu(session, branch_id), LIMIT_S)


async def test_menu_get_answers_the_menu_snapshot(services: Services, world: World, menu: Menu) -> None:
    """Kiosks, kitchen displays and staff get their branch's menu, exactly the snapshot, and nothing is emitted."""
    expected = await snapshot(services, world.branch_a)
    [category] = expected["categories"]
    assert [item["id"] for item in category["items"]] == [menu.offered]
    assert category["items"][0] | {"option_groups": []} == {
        "id": menu.offered,
        "category_id": category["id"],
        "name": "Burger",
        "description": None,
        "image_url": None,
        "price": 900,
        "allergens": [],
        "calories": None,
        "position": 0,
        "available": True,
        "stock": 5,
        "orderable": True,
        "dayparts": [],
        "option_groups": [],
        "combo_slots": [],
        "translations": {},
    }
    kiosk = Principal(kind="device", id=7, branch_id=world.branch_a, device_kind=DeviceKind.KIOSK)
    kitchen = Principal(kind="device", id=8, branch_id=world.branch_a, device_kind=DeviceKind.KITCHEN_DISPLAY)
    staff = await principal_of(services, world.staff_a)
    for who in (kiosk, kitchen, staff):
        reply, outcome = await get_menu(services, who, {})
        assert outcome == "ok", reply
        assert reply["data"] == expected
    assert await outbox(services) == []


async def test_menu_items_and_choices_carry_their_allergens_and_calories(shop: Shop) -> None:
    """A kiosk's menu shows each item's allergens and kcal, and what each choice adds: the burger's gluten, eggs and
    sesame at 550 kcal, its cheese's milk and 110 kcal; an item of unknown calories has null, one of none `[]`."""
    menu = await shop.send(shop.kiosk, "menu.get", {})
    items = {item["name"]: item for category in menu["categories"] for item in category["items"]}
    burger = items["Burger"]
    assert (burger["allergens"], burger["calories"]) == (["gluten", "eggs", "sesame"], 550)
    choices = {c["name"]: (c["allergens"], c["calories"]) for g in burger["option_groups"] for c in g["choices"]}
    assert choices == {"Regular": ([], 0), "Large": ([], 220), "Cheese": (["milk"], 110), "Bacon": ([], 90)}
    assert [(items[name]["allergens"], items[name]["calories"]) for name in ("Fries", "Cola")] == [
        ([], 320),
        ([], None),
    ]


async def test_menu_get_names_the_branch_only_for_chain_wide_users(
    services: Services, world: World, menu: Menu
) -> None:
    """Admins must name a branch (`invalid` without); others may name only their own (`forbidden` otherwise)."""
    admin = await principal_of(services, world.admin)
    reply, outcome = await get_menu(services, admin, {}, "a1")
    assert outcome == "invalid"
    assert [error["field"] for error in reply["error"]["details"]["errors"]] == ["branch_id"]
    reply, outcome = await get_menu(services, admin, {"branch_id": world.branch_b}, "a2")
    assert outcome == "ok"
    expected = {
        "branch_id": world.branch_b,
        "currency": "USD",
        "service_modes": ["eat_in", "takeaway"],
        "locale": "en",
        "default_locale": "en",
        "locales": ["en"],
        "categories": [],
    }
    assert reply["data"] == expected
    reply, outcome = await get_menu(services, admin, {"branch_id": 999_999}, "a3")
    assert (outcome, reply["error"]["details"]) == ("not_found", {"resource": "branch", "id": 999_999})
    staff_b = await principal_of(services, world.staff_b)
    reply, outcome = await get_menu(services, staff_b, {"branch_id": world.branch_a})
    assert outcome == "forbidden"
    reply, outcome = await get_menu(services, staff_b, {"branch_id": world.branch_b}, "b2")
    assert outcome == "ok"


@pytest.mark.parametrize("kind", [DeviceKind.PAYMENT_TERMINAL, DeviceKind.ORDER_BOARD])
async def test_menu_get_is_not_for_other_devices(services: Services, world: World, kind: DeviceKind) -> None:
    """Payment terminals and order boards get `forbidden`."""
    device = Principal(kind="device", id=9, branch_id=world.branch_a, device_kind=kind)
    reply, outcome = await get_menu(services, device, {})
    assert (outcome, reply["error"]["code"]) == ("forbidden", "forbidden")


async def test_menu_get_takes_no_other_data(services: Services, world: World) -> None:
    """Fields other than `branch_id` are `invalid`."""
    kiosk = Principal(kind="device", id=7, branch_id=world.branch_a, device_kind=DeviceKind.KIOSK)
    reply, outcome = await get_menu(services, kiosk, {"items": True})
    assert outcome == "invalid"
    assert [error["field"] for error in reply["error"]["details"]["errors"]] == ["items"]


async def test_menu_get_is_not_logged_so_a_retry_reads_the_menu_afresh(
    services: Services, world: World, menu: Menu
) -> None:
    """A read is not kept in the command log: the same id again answers the menu as it is now."""
    kiosk = Principal(kind="device", id=7, branch_id=world.branch_a, device_kind=DeviceKind.KIOSK)
    first, _ = await get_menu(services, kiosk, {}, "same")
    async with services.db.session() as session:
        await session.execute(update(Item).where(Item.id == menu.offered).values(price=990))
        assert (await session.scalars(select(CommandLogEntry))).all() == []
    again, _ = await get_menu(services, kiosk, {}, "same")
    prices = [item["price"] for reply in (first, again) for item in reply["data"]["categories"][0]["items"]]
    assert prices == [900, 990]
