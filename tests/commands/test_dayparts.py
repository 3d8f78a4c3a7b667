"""Dayparts in cart commands: an item outside its window is not added, and a cart built inside it is not placed
after it closes, with the window named; the commands run at a moment the test picks (`CommandContext.now`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import select, update

from channels import names
from channels.client import DeviceClient
from channels.unit_of_work import UnitOfWork
from persistence.base import utcnow
from persistence.tables import Category, Daypart, Item, OutboxEvent
from server.app import build_services
from server.auth.principals import Principal
from server.commands.router import CommandContext
from server.errors import ApiError
from server.payloads.menu import MenuSnapshot, branch_item, branch_menu
from server.settings import Settings
from tests.live import live_server
from tests.shop import COMMANDS, Shop

# Branch a is in Berlin: 08:00 UTC in December is 09:00 there, 10:01 UTC is 11:01.
BREAKFAST_TIME = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
AFTER_BREAKFAST = datetime(2026, 12, 7, 10, 1, tzinfo=UTC)
BREAKFAST_WINDOW = {"name": "Breakfast", "starts_at": "06:00", "ends_at": "11:00"}


async def run_at(
    shop: Shop, now: datetime, kind: str, data: dict[str, Any], sender: Principal | None = None
) -> dict[str, Any]:
    """Run a command of `sender` (the first kiosk by default) as if at `now`, committed as the router commits it;
    its reply data."""
    spec = COMMANDS.commands[kind]
    services = shop.services
    principal = sender or shop.kiosk.principal
    async with UnitOfWork(services.db, services.relay) as uow:
        ctx = CommandContext(principal, services.settings, services.presence, uow, "c", now=lambda: now)
        reply = await spec.handler(ctx, spec.model.model_validate(data))
    return reply.model_dump(mode="json") if isinstance(reply, BaseModel) else reply


async def refused_at(shop: Shop, now: datetime, kind: str, data: dict[str, Any]) -> ApiError:
    """The refusal of a command run as if at `now`."""
    with pytest.raises(ApiError) as refused:
        await run_at(shop, now, kind, data)
    return refused.value


async def _breakfast(shop: Shop, *, item: int | None = None, category_of: int | None = None) -> int:
    """A Breakfast daypart 06:00-11:00 on `item`, or on the category of `category_of`; its id."""
    async with shop.services.db.session() as session:
        daypart = Daypart(name="Breakfast", starts_at=time(6), ends_at=time(11))
        session.add(daypart)
        await session.flush()
        if item is not None:
            await session.execute(update(Item).where(Item.id == item).values(daypart_id=daypart.id))
        if category_of is not None:
            row = await session.get(Item, category_of)
            assert row is not None
            await session.execute(update(Category).where(Category.id == row.category_id).values(daypart_id=daypart.id))
        return daypart.id


async def test_an_item_is_added_inside_its_window_and_refused_outside_it_naming_the_window(shop: Shop) -> None:
    """The burger is breakfast only: added at 09:00 Berlin time; at 11:01 `out_of_stock`, reason "daypart", with the
    window; the fries, of no daypart, are added at any time."""
    await _breakfast(shop, item=shop.burger)
    cart = await run_at(shop, BREAKFAST_TIME, "cart.create", {})
    added = await run_at(shop, BREAKFAST_TIME, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger})
    assert [(line["item_id"], line["problem"]) for line in added["lines"]] == [(shop.burger, None)]

    error = await refused_at(shop, AFTER_BREAKFAST, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger})
    assert error.code == "out_of_stock"
    assert error.details["items"] == [
        {"item_id": shop.burger, "name": "Burger", "requested": 2, "left": 0, "reason": "daypart"}
        | {"window": BREAKFAST_WINDOW}
    ]
    later = await run_at(shop, AFTER_BREAKFAST, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
    burger = next(line for line in later["lines"] if line["item_id"] == shop.burger)
    assert burger["problem"] == {"code": "unavailable", "message": "Burger is sold only at Breakfast: 06:00–11:00"}


async def test_a_cart_built_at_breakfast_is_not_placed_after_it_ends(shop: Shop) -> None:
    """Built at 09:00, placed at 11:01: `out_of_stock` naming the burger, reason "daypart"; placed at 09:00 it is an
    order."""
    await _breakfast(shop, item=shop.burger)
    cart = await run_at(shop, BREAKFAST_TIME, "cart.create", {})
    await run_at(shop, BREAKFAST_TIME, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger})
    await run_at(shop, BREAKFAST_TIME, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries})

    error = await refused_at(shop, AFTER_BREAKFAST, "order.place", {"cart_id": cart["id"]})
    assert error.code == "out_of_stock"
    assert error.details["items"] == [
        {"item_id": shop.burger, "name": "Burger", "requested": 1, "left": 0, "reason": "daypart"}
        | {"window": BREAKFAST_WINDOW}
    ]
    order = await run_at(shop, BREAKFAST_TIME, "order.place", {"cart_id": cart["id"]})
    assert order["status"] == "awaiting_payment"


async def test_a_categorys_window_holds_for_its_items_and_new_hours_are_seen_at_once(shop: Shop) -> None:
    """Breakfast on the burger's category: at 09:00 the burger is added; once the window is moved to end at 08:00,
    a place at the same 09:00 is refused (the process's catalogue copy drops the old hours)."""
    daypart = await _breakfast(shop, category_of=shop.burger)
    cart = await run_at(shop, BREAKFAST_TIME, "cart.create", {})
    await run_at(shop, BREAKFAST_TIME, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger})
    async with shop.services.db.session() as session:
        await session.execute(update(Daypart).where(Daypart.id == daypart).values(ends_at=time(8)))
    error = await refused_at(shop, BREAKFAST_TIME, "order.place", {"cart_id": cart["id"]})
    assert [(item["item_id"], item["reason"], item["window"]["ends_at"]) for item in error.details["items"]] == [
        (shop.burger, "daypart", "08:00")
    ]


async def test_an_86d_item_is_refused_at_place_with_reason_unavailable(shop: Shop) -> None:
    """Switched off after it was added: reason "unavailable", no window."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    await shop.set_item(shop.cola, available=False)
    error = await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert error["details"]["items"] == [
        {"item_id": shop.cola, "name": "Cola", "requested": 1, "left": 0, "reason": "unavailable"}
    ]


async def test_the_menu_names_each_items_windows_and_is_orderable_only_inside_them(shop: Shop) -> None:
    """Breakfast on the burger's category: the burger names the window and is orderable at 09:00 Berlin time, not at
    11:01, nor are the fries, in the same category; the cola, of no daypart, is orderable at both; one item reads
    as the menu shows it."""
    await _breakfast(shop, category_of=shop.burger)
    async with shop.services.db.session() as session:
        at_breakfast = await branch_menu(session, shop.branch_id, BREAKFAST_TIME)
        after = await branch_menu(session, shop.branch_id, AFTER_BREAKFAST)
        burger_after = await branch_item(session, shop.branch_id, shop.burger, AFTER_BREAKFAST)
    MenuSnapshot.model_validate(at_breakfast)

    def items(menu: dict[str, Any]) -> dict[int, tuple[bool, list[dict[str, str]]]]:
        return {i["id"]: (i["orderable"], i["dayparts"]) for c in menu["categories"] for i in c["items"]}

    assert items(at_breakfast)[shop.burger] == (True, [BREAKFAST_WINDOW])
    assert items(after)[shop.burger] == (False, [BREAKFAST_WINDOW])
    assert items(after)[shop.fries] == (False, [BREAKFAST_WINDOW])  # a main too
    assert items(at_breakfast)[shop.cola] == items(after)[shop.cola] == (True, [])
    assert burger_after is not None
    assert (burger_after["orderable"], burger_after["dayparts"]) == (False, [BREAKFAST_WINDOW])


async def test_stock_changed_is_not_orderable_outside_the_window(shop: Shop) -> None:
    """Staff bring the burger back at 11:01 Berlin time: `stock.changed` says available but not orderable, as the
    menu does; at 09:00 it is orderable."""
    await _breakfast(shop, item=shop.burger)
    await shop.set_item(shop.burger, available=False)
    for now, orderable in ((AFTER_BREAKFAST, False), (BREAKFAST_TIME, True)):
        reply = await run_at(shop, now, "item.set_available", {"item_id": shop.burger, "available": True}, shop.staff)
        assert reply["orderable"] is orderable
        async with shop.services.db.session() as session:
            event = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id.desc()))).first()
        assert event is not None and (event.event, event.data["orderable"]) == ("stock.changed", orderable)


async def test_a_socket_sees_the_menu_and_commands_at_the_services_clock(shop: Shop, settings: Settings) -> None:
    """Through a real socket, the menu snapshot, `menu.get` and `cart.add` all read the branch's time from the
    services' clock: the breakfast burger sells at 09:00 Berlin time and is refused, closed, at 11:01; the cart is
    stamped in real time all the same."""
    await _breakfast(shop, item=shop.burger)
    now = [BREAKFAST_TIME]
    services = build_services(settings, db=shop.services.db, prefix=f"test:{uuid.uuid4()}", clock=lambda: now[0])
    try:
        async with live_server(services) as live, DeviceClient(live.ws, shop.kiosk.token) as kiosk:
            while (frame := await kiosk.next_frame())["channel"] != names.branch_menu(shop.branch_id):
                pass
            assert frame["type"] == "snapshot" and _burger(frame["data"])["orderable"] is True
            cart = await kiosk.command("cart.create")
            added = await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": shop.burger})
            # Only the menu's time of day follows the clock: the cart is stamped in real time, which the workers
            # that expire idle carts compare with, whatever day the clock says.
            stamped = datetime.fromisoformat(added["updated_at"].replace("Z", "+00:00"))
            assert abs((stamped - utcnow()).total_seconds()) < 60

            now[0] = AFTER_BREAKFAST
            assert _burger(await kiosk.command("menu.get"))["orderable"] is False
            refused = await kiosk.request("cart.add", {"cart_id": cart["id"], "item_id": shop.burger})
            assert refused["error"]["code"] == "out_of_stock"
            assert refused["error"]["details"]["items"][0]["reason"] == "daypart"
    finally:
        await services.stop()
        await services.backend.close()


def _burger(menu: dict[str, Any]) -> dict[str, Any]:
    return next(item for category in menu["categories"] for item in category["items"] if item["name"] == "Burger")
