"""The order flow through real WebSocket clients: kiosk to kitchen to board, stock races, timeouts across restarts."""

from __future__ import annotations

import asyncio
from typing import Any

from channels import names
from channels.client import CommandFailed, DeviceClient
from persistence.database import Database
from persistence.enums import DeviceKind, OrderStatus
from persistence.tables import Order
from server.services import Services
from server.settings import Settings
from tests.live import add_device, live_server
from tests.realtime.socket_helpers import services_with
from tests.shop import Shop
from tests.world import World

TIMEOUT_S = 10


def token_of(headers: dict[str, str]) -> str:
    """The bearer token of a world actor."""
    return headers["Authorization"].split()[1]


async def test_a_kiosk_order_reaches_the_kitchen_and_the_board(shop: Shop, world: World) -> None:
    """Menu, cart, customer, place, cash payment, kitchen moves: every device hears its part, in order."""
    async with live_server(shop.services) as live, asyncio.timeout(30):
        async with (
            DeviceClient(live.ws, shop.kiosk.token) as kiosk,
            DeviceClient(live.ws, shop.kitchen.token) as kitchen,
            DeviceClient(live.ws, shop.board.token) as board,
            DeviceClient(live.ws, token_of(world.staff_a.headers)) as staff,
        ):
            menu = await kiosk.command("menu.get")
            burger = next(i for c in menu["categories"] for i in c["items"] if i["name"] == "Burger")
            large = next(c["id"] for g in burger["option_groups"] for c in g["choices"] if c["name"] == "Large")

            cart = await kiosk.command("cart.create")
            cart = await kiosk.command(
                "cart.add", {"cart_id": cart["id"], "item_id": burger["id"], "qty": 2, "options": [large]}
            )
            cart = await kiosk.command("cart.set_customer", {"cart_id": cart["id"], "phone": shop.customer_phone})
            assert cart["total"] == 2100
            order = await kiosk.command("order.place", {"cart_id": cart["id"], "expected_total": cart["total"]})
            assert order["status"] == "awaiting_payment"
            placed = await kiosk.next_event(names.device(shop.kiosk.id), "order.placed")
            assert placed["data"]["id"] == order["id"]

            paid = await staff.command("order.mark_paid", {"order_id": order["id"]})
            queued = await kitchen.next_event(names.branch_kitchen(shop.branch_id), "order.queued")
            ticket = queued["data"]
            assert (ticket["id"], ticket["customer_name"], ticket["status"]) == (order["id"], "Ana", "paid")
            assert [(line["name"], line["qty"]) for line in ticket["lines"]] == [("Burger", 2)]
            assert [o["name"] for o in ticket["lines"][0]["options"]] == ["Large"]
            shown = await board.next_event(names.branch_board(shop.branch_id), "board.updated")
            entry = {"order_id": order["id"], "version": paid["version"], "number": order["number"]}
            assert shown["data"] == entry | {"column": "preparing"}

            await kitchen.command("order.start", {"order_id": order["id"]})
            await kitchen.command("order.ready", {"order_id": order["id"]})
            ready = await board.next_event(names.branch_board(shop.branch_id), "board.updated")
            assert ready["data"]["column"] == "ready"
            heard = await kiosk.next_event(names.device(shop.kiosk.id), "order.ready")
            assert heard["data"]["status"] == "ready"
            await kitchen.command("order.complete", {"order_id": order["id"]})
            gone = await board.next_event(names.branch_board(shop.branch_id), "board.updated")
            assert gone["data"]["column"] is None


async def test_a_reconnecting_kiosk_finds_its_open_carts_and_unpaid_orders(shop: Shop) -> None:
    """The device snapshot on hello holds the kiosk's open carts, priced, and its orders awaiting payment."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 2})
    placed_cart = await shop.send(shop.kiosk, "cart.create", {})
    await shop.send(shop.kiosk, "cart.add", {"cart_id": placed_cart["id"], "item_id": shop.cola})
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": placed_cart["id"]})
    async with live_server(shop.services) as live, DeviceClient(live.ws, shop.kiosk.token) as kiosk:
        async with asyncio.timeout(TIMEOUT_S):
            while (frame := await kiosk.next_frame())["channel"] != names.device(shop.kiosk.id):
                pass
    assert frame["type"] == "snapshot"
    assert [c["id"] for c in frame["data"]["carts"]] == [cart["id"]]
    assert frame["data"]["carts"][0]["total"] == cart["total"] == 700
    assert [o["id"] for o in frame["data"]["orders"]] == [order["id"]]


async def test_fifty_kiosks_racing_for_the_last_ten_get_exactly_ten_orders(shop: Shop, services: Services) -> None:
    """50 kiosks place 1 Fries each at once with 10 left: 10 orders, 40 `out_of_stock`, stock ends at 0."""
    kiosks = [await add_device(services, shop.branch_id, DeviceKind.KIOSK, f"racer {n}") for n in range(50)]
    async with live_server(services) as live, asyncio.timeout(120):
        clients = [DeviceClient(live.ws, token) for _, token in kiosks]
        await asyncio.gather(*(client.connect() for client in clients))
        try:
            carts = await asyncio.gather(*(client.command("cart.create") for client in clients))
            await asyncio.gather(
                *(
                    client.command("cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 1})
                    for client, cart in zip(clients, carts, strict=True)
                )
            )
            replies = await asyncio.gather(
                *(
                    client.request("order.place", {"cart_id": cart["id"]}, timeout=60)
                    for client, cart in zip(clients, carts, strict=True)
                )
            )
        finally:
            await asyncio.gather(*(client.close() for client in clients))
    placed = [reply for reply in replies if reply["ok"]]
    refused = [reply["error"] for reply in replies if not reply["ok"]]
    assert len(placed) == 10
    assert {error["code"] for error in refused} == {"out_of_stock"} and len(refused) == 40
    assert all(error["details"]["items"][0]["left"] == 0 for error in refused)
    assert await shop.stock(shop.fries) == 0
    assert sorted(reply["data"]["number"] for reply in placed) == list(range(1, 11))


async def order_row(db: Database, order_id: int) -> Order:
    """The order as stored."""
    async with db.session() as session:
        order = await session.get(Order, order_id)
    assert order is not None
    return order


async def test_the_payment_timeout_fires_after_a_restart(shop: Shop, settings: Settings, db: Database) -> None:
    """An order placed before the server stopped is cancelled by the next server once due, and its stock returned."""
    async with services_with(settings, db, ORDER_PAYMENT_TIMEOUT_S=2) as first:
        async with live_server(first) as live, DeviceClient(live.ws, shop.kiosk.token) as kiosk:
            cart = await kiosk.command("cart.create")
            await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 3})
            order = await kiosk.command("order.place", {"cart_id": cart["id"]})
    assert await shop.stock(shop.fries) == 7
    await asyncio.sleep(2.5)  # the deadline passes while no server runs
    async with services_with(settings, db, ORDER_PAYMENT_TIMEOUT_S=2) as second, live_server(second):
        async with asyncio.timeout(TIMEOUT_S):
            # Polling the database: there is nothing else to wait on.
            while (cancelled := await order_row(db, order["id"])).status != OrderStatus.CANCELLED:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    assert cancelled.cancel_reason == "payment_timeout"
    assert await shop.stock(shop.fries) == 10


async def test_an_item_sold_out_disappears_from_every_kiosk_of_the_branch(shop: Shop) -> None:
    """The order taking the last Fries sends `stock.changed` with orderable false to the other kiosks' menus."""
    await shop.set_item(shop.fries, stock=1)
    async with live_server(shop.services) as live, asyncio.timeout(TIMEOUT_S):
        async with DeviceClient(live.ws, shop.kiosk.token) as buyer, DeviceClient(live.ws, shop.kiosk2.token) as other:
            cart = await buyer.command("cart.create")
            await buyer.command("cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
            await buyer.command("order.place", {"cart_id": cart["id"]})
            event = await other.next_event(names.branch_menu(shop.branch_id), "stock.changed")
            assert event["data"] == {
                "branch_id": shop.branch_id,
                "item_id": shop.fries,
                "available": True,
                "stock": 0,
                "orderable": False,
            }
            cart = await other.command("cart.create")
            try:
                await other.command("cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
            except CommandFailed as failed:
                error: dict[str, Any] = failed.reply["error"]
            assert error["code"] == "out_of_stock"
