"""The AsyncAPI document against a live server: every frame it sends, in a tour of the channels and in a
whole order, is a message the document describes.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx

from channels import names
from channels.client import DeviceClient
from channels.names import BRANCH_TOPICS
from persistence.base import utcnow
from persistence.enums import DeviceKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.tables import (
    Cart,
    Category,
    Item,
    ItemAvailability,
    OptionChoice,
    OptionGroup,
    Order,
    OrderLine,
    Payment,
)
from server.api.asyncapi_schemas import EVENT_DATA
from server.services import Services
from tests.api.asyncapi_helpers import CHANNEL_KINDS, LIMIT_S, PREFIX, _Frames
from tests.live import add_device, live_server
from tests.shop import Shop
from tests.world import World


class _Seen:
    """One client of a live server whose every frame is checked against the document."""

    def __init__(self, frames: _Frames, client: DeviceClient) -> None:
        self._frames = frames
        self.client = client
        frames.check("welcome", {"type": "welcome", "data": client.welcome})

    async def send(self, command: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send a command that must succeed; its reply data, the reply checked."""
        reply = await self.client.request(command, data, timeout=LIMIT_S)
        self._frames.frame(reply, command)
        assert reply["ok"], reply
        result: dict[str, Any] = reply["data"]
        return result

    async def until(self, channel: str, event: str, **data: Any) -> dict[str, Any]:
        """Check every frame that arrives until the event `event` on `channel` whose data holds `data`; its data."""
        while True:
            frame = await self.client.next_frame(timeout=LIMIT_S)
            self._frames.frame(frame)
            if frame["type"] == "event" and (frame["channel"], frame["event"]) == (channel, event):
                found: dict[str, Any] = frame["data"]
                if all(found.get(key) == value for key, value in data.items()):
                    return found

    async def snapshot(self, channel: str) -> dict[str, Any]:
        """Subscribe to `channel` and check every frame that arrives until its snapshot; the snapshot's data."""
        await self.send("subscribe", {"channel": channel})
        while True:
            frame = await self.client.next_frame(timeout=LIMIT_S)
            self._frames.frame(frame)
            if (frame["type"], frame.get("channel")) == ("snapshot", channel):
                data: dict[str, Any] = frame["data"]
                return data

    async def drain(self) -> None:
        """Check every frame still on its way, until none came for a moment."""
        while True:
            try:
                frame = await self.client.next_frame(timeout=0.3)
            except TimeoutError:
                return
            self._frames.frame(frame)


async def _shop(services: Services, world: World, kiosk_id: int, terminal_id: int) -> int:
    """An item with options, a kitchen ticket, an order on the board, a kiosk with a cart and a payment in flight."""
    async with services.db.session() as session:
        category = Category(name="Mains")
        session.add(category)
        await session.flush()
        size = OptionGroup(name="Size", choices=[OptionChoice(name="Large", price_delta=150)])
        item = Item(category_id=category.id, name="Burger", price=900, option_groups=[size])
        session.add(item)
        await session.flush()
        session.add(ItemAvailability(branch_id=world.branch_a, item_id=item.id, available=True, stock=5))
        session.add(Cart(branch_id=world.branch_a, device_id=kiosk_id))
        orders = []
        for number, status in enumerate((OrderStatus.PAID, OrderStatus.PREPARING, OrderStatus.AWAITING_PAYMENT), 1):
            line = OrderLine(item_id=item.id, name="Burger", qty=1, unit_price=900, options=[], line_total=900)
            order = Order(
                branch_id=world.branch_a,
                device_id=kiosk_id,
                number=number,
                business_date=date.today(),
                status=status,
                currency="EUR",
                subtotal=900,
                tax=0,
                total=900,
                paid_at=None if status == OrderStatus.AWAITING_PAYMENT else utcnow(),
                lines=[line],
            )
            session.add(order)
            orders.append(order)
        await session.flush()
        session.add(
            Payment(
                order_id=orders[-1].id,
                branch_id=world.branch_a,
                method=PaymentMethod.TERMINAL,
                kiosk_id=kiosk_id,
                terminal_id=terminal_id,
                amount=900,
                currency="EUR",
                status=PaymentStatus.PENDING,
                idempotency_key="pay-1",
            )
        )
        return item.id


async def test_frames_of_a_live_server_match_the_document(
    services: Services, world: World, document: dict[str, Any]
) -> None:
    """Welcome, every snapshot kind, events, replies, errors and pong, as a real server sends them, fit the schemas."""
    check = _Frames(document)
    kiosk_id, kiosk_token = await add_device(services, world.branch_a, DeviceKind.KIOSK)
    terminal_id, _ = await add_device(services, world.branch_a, DeviceKind.PAYMENT_TERMINAL)
    item_id = await _shop(services, world, kiosk_id, terminal_id)
    admin_token = world.admin.headers["Authorization"].split()[1]
    staff_token = world.staff_a.headers["Authorization"].split()[1]
    branch = world.branch_a
    channels = {f"branch:{branch}:{topic}": f"branch.{topic}" for topic in BRANCH_TOPICS}
    channels[f"branch:{branch}:kitchen:grill"] = "branch.station"
    channels[f"device:{kiosk_id}"] = "device"

    async with live_server(services) as live, DeviceClient(live.ws, admin_token) as admin:
        check.check("welcome", {"type": "welcome", "data": admin.welcome})
        snapshots = {}
        for channel, kind in channels.items():
            check.check("reply.subscribe", await admin.request("subscribe", {"channel": channel}))
            snapshot = await admin.next_frame()
            assert snapshot["channel"] == channel
            check.check(f"snapshot.{kind}", snapshot)
            snapshots[kind] = snapshot["data"]
        # Rows in every list, so that the schemas of the items were checked too.
        assert [ticket["status"] for ticket in snapshots["branch.kitchen"]["tickets"]] == ["paid", "preparing"]
        assert [place["number"] for place in snapshots["branch.board"]["preparing"]] == [1, 2]
        assert snapshots["branch.board"]["ready"] == []
        assert len(snapshots["branch.orders"]["orders"]) == 3 and snapshots["branch.devices"]["devices"]
        assert all(snapshots["device"][key] for key in ("carts", "orders", "payments"))
        assert snapshots["branch.menu"]["categories"][0]["items"][0]["option_groups"][0]["choices"]

        async with DeviceClient(live.ws, kiosk_token) as kiosk, DeviceClient(live.ws, staff_token) as staff:
            check.check("welcome", {"type": "welcome", "data": kiosk.welcome})
            check.check("event.device.online", await admin.next_event(f"branch:{branch}:devices", "device.online"))
            changed = await staff.request("item.set_available", {"item_id": item_id, "available": False})
            check.check("reply.item.set_available", changed)
            check.check("event.stock.changed", await admin.next_event(f"branch:{branch}:menu", "stock.changed"))
            missing = await staff.request("item.set_available", {"item_id": item_id + 1, "available": True})
            assert missing["error"]["code"] == "not_found"
            check.check("reply.error", missing)
            refresh_token, _ = services.tokens.issue("device", kiosk_id, secret_version=1)
            check.check("reply.auth.refresh", await kiosk.request("auth.refresh", {"token": refresh_token}))
            await kiosk.send_raw('{"type": "ping"}')
            await kiosk.send_raw("not json")
            frame = await kiosk.next_frame()
            while frame["type"] != "pong":  # the kiosk's snapshots and the stock event come first
                frame = await kiosk.next_frame()
            check.check("pong", frame)
            invalid = await kiosk.next_frame()
            assert invalid["id"] is None
            check.check("reply.error", invalid)
        check.check("event.device.offline", await admin.next_event(f"branch:{branch}:devices", "device.offline"))
        check.check("reply.unsubscribe", await admin.request("unsubscribe", {"channel": f"device:{kiosk_id}"}))

    server_frames = {"welcome", "pong", "reply.error", "reply.item.set_available", "event.stock.changed"}
    server_frames |= {"reply.subscribe", "reply.unsubscribe", "reply.auth.refresh"}
    server_frames |= {"event.device.online", "event.device.offline"} | {f"snapshot.{kind}" for kind in CHANNEL_KINDS}
    assert check.checked == server_frames


async def test_an_order_flow_on_a_live_server_matches_the_document(
    shop: Shop, world: World, document: dict[str, Any]
) -> None:
    """Every reply, event and snapshot kiosk, kitchen, board, staff and admin see of a whole order fit the document."""
    check = _Frames(document)
    branch = shop.branch_id
    menu_channel, kitchen_channel = names.branch_menu(branch), names.branch_kitchen(branch)
    board_channel, orders_channel = names.branch_board(branch), names.branch_orders(branch)
    devices_channel, device_channel = names.branch_devices(branch), names.device(shop.kiosk.id)
    admin_token = world.admin.headers["Authorization"].split()[1]
    staff_token = world.staff_a.headers["Authorization"].split()[1]

    async with live_server(shop.services) as live, asyncio.timeout(60):
        async with (
            DeviceClient(live.ws, shop.kiosk.token) as kiosk_client,
            DeviceClient(live.ws, shop.kitchen.token) as kitchen_client,
            DeviceClient(live.ws, shop.board.token) as board_client,
            DeviceClient(live.ws, staff_token) as staff_client,
        ):
            kiosk, kitchen = _Seen(check, kiosk_client), _Seen(check, kitchen_client)
            board, staff = _Seen(check, board_client), _Seen(check, staff_client)
            await staff.send("subscribe", {"channel": orders_channel})

            # A kiosk orders a burger with options and fries for a known customer; staff take cash; it gets the receipt.
            await kiosk.send("menu.get", {})
            cart = await kiosk.send("cart.create", {})
            options = [shop.choices["Large"], shop.choices["Bacon"]]
            await kiosk.send("cart.add", {"cart_id": cart["id"], "item_id": shop.burger, "qty": 2, "options": options})
            cart = await kiosk.send("cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
            fries = cart["lines"][1]["id"]
            cart = await kiosk.send("cart.update", {"cart_id": cart["id"], "line_id": fries, "qty": 3})
            cart = await kiosk.send("cart.set_customer", {"cart_id": cart["id"], "phone": shop.customer_phone})
            order = await kiosk.send("order.place", {"cart_id": cart["id"], "expected_total": cart["total"]})
            await staff.send("order.mark_paid", {"order_id": order["id"]})
            await kiosk.send("order.receipt", {"order_id": order["id"]})

            # The kitchen prepares it, calls it ready, takes it back once and calls it ready again.
            for move in ("order.start", "order.ready", "order.recall", "order.ready"):
                ready = await kitchen.send(move, {"order_id": order["id"]})
            await board.until(board_channel, "board.updated", order_id=order["id"], column="ready")

            # Meanwhile an order awaits payment and a cart is open: an admin takes every snapshot.
            cart = await kiosk.send("cart.create", {})
            await kiosk.send("cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
            unpaid = await kiosk.send("order.place", {"cart_id": cart["id"]})
            cart = await kiosk.send("cart.create", {})
            await kiosk.send("cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
            async with DeviceClient(live.ws, admin_token) as admin_client:
                admin = _Seen(check, admin_client)
                channels = (
                    menu_channel,
                    kitchen_channel,
                    board_channel,
                    orders_channel,
                    devices_channel,
                    device_channel,
                )
                taken = {channel: await admin.snapshot(channel) for channel in channels}
            assert taken[board_channel] == {
                "preparing": [],
                "ready": [{"order_id": order["id"], "version": ready["version"], "number": order["number"]}],
            }
            assert [ticket["id"] for ticket in taken[kitchen_channel]["tickets"]] == [order["id"]]
            assert [o["id"] for o in taken[device_channel]["orders"]] == [unpaid["id"]]
            assert [c["id"] for c in taken[device_channel]["carts"]] == [cart["id"]]

            # The order is handed over, the unpaid one cancelled; then the menu changes.
            await kitchen.send("order.complete", {"order_id": order["id"]})
            await kiosk.send("order.cancel", {"order_id": unpaid["id"]})
            async with httpx.AsyncClient(base_url=live.http, headers=world.admin.headers, timeout=LIMIT_S) as http:
                assert (await http.patch(f"{PREFIX}/items/{shop.burger}", json={"price": 950})).status_code == 200
                assert (await http.delete(f"{PREFIX}/items/{shop.cola}")).status_code == 204

            await board.until(board_channel, "board.updated", order_id=order["id"], column=None)
            await kitchen.until(kitchen_channel, "order.completed", id=order["id"])
            await kitchen.until(menu_channel, "menu.item_removed", item_id=shop.cola)
            await staff.until(orders_channel, "order.cancelled", id=unpaid["id"])
            await kiosk.until(device_channel, "order.cancelled", id=unpaid["id"])
            await kiosk.until(menu_channel, "menu.item_removed", item_id=shop.cola)
            for seen in (kiosk, kitchen, board, staff):
                await seen.drain()

    commands = ["menu.get", "cart.create", "cart.add", "cart.update", "cart.set_customer", "order.place"]
    commands += ["order.cancel", "order.mark_paid", "order.start", "order.ready", "order.recall", "order.complete"]
    commands += ["order.receipt"]
    expected = {"welcome", "reply.subscribe", *(f"reply.{command}" for command in commands)}
    expected |= {f"snapshot.{kind}" for kind in CHANNEL_KINDS if kind != "branch.station"}
    # Payments and refunds are held to the document in tests/payloads/test_models.py and the payment flow tests,
    # stations' tickets in tests/commands/test_stations.py.
    served_here = (event for event in EVENT_DATA if not event.startswith(("device.", "payment.", "station.")))
    expected |= {f"event.{event}" for event in served_here if event != "order.refunded"}
    assert expected <= check.checked, sorted(expected - check.checked)
