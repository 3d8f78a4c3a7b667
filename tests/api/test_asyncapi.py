"""The AsyncAPI document of the device protocol, and docs/protocol.md: served, complete, and true to the server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette

from channels import frames, names
from channels.client import DeviceClient
from channels.names import BRANCH_TOPICS, parse
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
from server.api import asyncapi
from server.api.asyncapi import asyncapi_document
from server.api.asyncapi_schemas import EVENT_DATA
from server.commands import command_registry
from server.commands.router import CommandContext, CommandRegistry, Who
from server.errors import ErrorCode
from server.realtime.connection import Hello, RefreshData, SubscribeData, UnsubscribeData
from server.services import Services
from server.settings import Settings
from tests.live import add_device, live_server
from tests.shop import Shop
from tests.world import World

COMMANDS = command_registry()


PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
CHANNEL_KINDS = [f"branch.{topic}" for topic in BRANCH_TOPICS] + ["branch.station", "device"]
# A station's kitchen hears the kitchen's events with its own ticket: its messages are its own.
STATION_EVENTS = "station_event."
LIMIT_S = 10


def _address(kind: str) -> str:
    """The channel address PROTOCOL.md writes for a channel kind of the document."""
    if kind == "branch.station":
        return "branch:{b}:kitchen:{station}"
    return "device:{d}" if kind == "device" else f"branch:{{b}}:{kind.removeprefix('branch.')}"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document as the real registry produces it."""
    return asyncapi_document(Settings(_env_file=None), COMMANDS)


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} is not a local reference"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
        while isinstance(node, dict) and set(node) == {"$ref"}:
            node = _resolve(document, node["$ref"])
    return node


def _model_schema(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
    """What pydantic says the model's JSON schema is, with nested models pointing into components."""
    schema = model.model_json_schema(
        ref_template=REF, mode="serialization" if mode == "serialization" else "validation"
    )
    schema.pop("$defs", None)
    return schema


async def test_document_is_served_publicly_as_json() -> None:
    """`GET {API_V1_STR}/asyncapi.json` needs no token and answers the generated document."""
    settings = Settings(_env_file=None, API_V1_STR="/v9")
    app = Starlette(routes=asyncapi.routes(settings, COMMANDS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        response = await http.get("/v9/asyncapi.json")
        again = await http.get("/v9/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == asyncapi_document(settings, COMMANDS)
    assert again.content == response.content
    assert response.json()["servers"]["ws"]["pathname"] == "/v9/ws"


def test_document_has_the_asyncapi_3_shape(document: dict[str, Any]) -> None:
    """Version 3.0.0 with info, the `ws` server, the six channel kinds, operations and components."""
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "KIOSK Application device protocol"
    assert "docs/protocol.md" in document["info"]["description"]
    server = document["servers"]["ws"]
    assert (server["protocol"], server["pathname"]) == ("ws", f"{PREFIX}/ws")
    assert "{host}" in server["host"] and "host" in server["variables"]
    assert set(document["channels"]) == {"connection", *CHANNEL_KINDS}
    for kind in CHANNEL_KINDS:
        channel = document["channels"][kind]
        assert channel["address"] == _address(kind)
        assert set(re.findall(r"\{(\w+)\}", channel["address"])) == set(channel["parameters"]), kind
    for name, operation in document["operations"].items():
        assert operation["action"] == name.split(".")[0], name
    assert {"schemas", "messages"} <= set(document["components"])


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    """No `$ref` points at a schema, message or channel that is not there."""
    refs = set(_refs(document))
    assert "#/components/schemas/CommandId" in refs
    for ref in refs:
        _resolve(document, ref)


def test_operations_use_only_messages_of_their_channels(document: dict[str, Any]) -> None:
    """AsyncAPI 3 requires an operation's messages (and its reply's) to be messages of its channel."""
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        assert operation["messages"], name
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name
        reply = operation.get("reply")
        if reply is not None:
            for message in reply["messages"]:
                assert message["$ref"].startswith(f"{reply['channel']['$ref']}/messages/"), name


def test_every_registered_command_is_sent_with_its_models(document: dict[str, Any]) -> None:
    """Each command of the registry is a send operation whose data and reply schemas are its models' own."""
    assert COMMANDS.commands, "no command is registered"
    for name, spec in COMMANDS.commands.items():
        operation = document["operations"][f"send.{name}"]
        assert operation["action"] == "send"
        assert operation["summary"] == spec.summary
        assert spec.who.describe() in operation["description"]
        payload = _resolve(document, operation["messages"][0]["$ref"])["payload"]
        assert payload["properties"]["type"] == {"const": name}
        assert _resolve(document, payload["properties"]["data"]["$ref"]) == _model_schema(spec.model), name
        replies = [_resolve(document, message["$ref"])["payload"] for message in operation["reply"]["messages"]]
        assert [reply["properties"]["ok"] for reply in replies] == [{"const": True}, {"const": False}]
        if spec.reply is not None:
            reply_schema = _resolve(document, replies[0]["properties"]["data"]["$ref"])
            assert reply_schema == _model_schema(spec.reply, "serialization"), name


def test_connection_commands_use_the_socket_models(document: dict[str, Any]) -> None:
    """hello, subscribe, unsubscribe and auth.refresh are described by server/realtime/connection.py's own models."""
    hello = _resolve(document, "#/components/messages/hello")["payload"]["allOf"]
    assert _resolve(document, hello[0]["$ref"]) == _model_schema(Hello)
    for name, model in (("subscribe", SubscribeData), ("unsubscribe", UnsubscribeData), ("auth.refresh", RefreshData)):
        payload = _resolve(document, f"#/components/messages/command.{name}")["payload"]
        assert _resolve(document, payload["properties"]["data"]["$ref"]) == _model_schema(model), name
        assert document["operations"][f"send.{name}"]["reply"]["messages"]
    for name in ("send.hello", "send.ping", "receive.connection"):
        assert name in document["operations"]


def test_events_carry_their_data_model_or_say_it_is_coming(document: dict[str, Any]) -> None:
    """Every event the server sends has its data schema, and every event of the document is one it sends."""
    for kind in CHANNEL_KINDS:
        messages = document["channels"][kind]["messages"]
        assert f"snapshot.{kind}" in messages, kind
    expected = {
        "cart.updated": "CartView",
        "board.updated": "BoardEntry",
        "menu.item_updated": "MenuItem",
        "menu.item_removed": "MenuItemRemoved",
        "stock.changed": "Availability",
        "device.online": "DevicePresence",
        "device.offline": "DevicePresence",
    }
    for status in ("placed", "paid", "queued", "preparing", "ready", "recalled", "completed", "cancelled", "refunded"):
        expected[f"order.{status}"] = "OrderView"
    for status in PaymentStatus:
        expected[f"payment.{status.value}"] = "PaymentView"
    expected["payment.requested"] = expected["payment.cancel_requested"] = "PaymentView"
    messages = document["components"]["messages"]
    events = {key.removeprefix("event."): message for key, message in messages.items() if key.startswith("event.")}
    for event, message in events.items():
        data = message["payload"]["properties"]["data"]
        assert data == {"$ref": REF.format(model=expected[event])}, event
        assert "description" not in message, event
    assert set(expected) == set(events)
    # On a station's kitchen every event carries the station's ticket.
    station = {key: message for key, message in messages.items() if key.startswith(STATION_EVENTS)}
    assert {message["name"] for message in station.values()} == {
        *(f"order.{status}" for status in ("queued", "preparing", "ready", "recalled", "completed", "cancelled")),
        "station.bumped",
        "station.recalled",
    }
    for key, message in station.items():
        assert message["payload"]["properties"]["data"] == {"$ref": REF.format(model="StationTicket")}, key


class Paint(BaseModel):
    """Data of a test command."""

    colour: str


def test_generator_documents_any_registry_and_refuses_unknown_error_codes() -> None:
    """A newly registered command appears at once; a typo in its error codes fails loudly."""
    commands = CommandRegistry()

    @commands.command("wall.paint", Paint, who=Who(devices=frozenset({DeviceKind.KIOSK})), summary="Paint a wall")
    async def paint(ctx: CommandContext, data: Paint) -> dict[str, Any]:
        """Paint it."""
        return {}

    document = asyncapi_document(Settings(_env_file=None), commands)
    operation = document["operations"]["send.wall.paint"]
    assert "Paint it." in operation["description"] and "kiosk" in operation["description"]
    assert document["components"]["schemas"]["Paint"] == _model_schema(Paint)
    assert "send.item.set_available" not in document["operations"]

    typo = CommandRegistry()
    typo.command("wall.paint", Paint, who=Who(), summary="Paint", errors=("not_fond",))(paint)
    with pytest.raises(ValueError, match="not_fond"):
        asyncapi_document(Settings(_env_file=None), typo)


def test_protocol_doc_keeps_up_with_the_code() -> None:
    """docs/protocol.md names every registered command, every close code and every error code."""
    text = PROTOCOL_DOC.read_text()
    for name in COMMANDS.commands:
        assert f"`{name}`" in text, name
    close_codes = [value for key, value in vars(frames).items() if key.isupper() and isinstance(value, int)]
    close_codes = [code for code in close_codes if 1000 <= code < 5000]
    assert close_codes
    for code in close_codes:
        assert re.search(rf"\b{code}\b", text), code
    for code in get_args(ErrorCode):
        assert f"`{code}`" in text, code
    for kind in CHANNEL_KINDS:
        assert f"`{_address(kind)}`" in text, kind


# What a live server sends ----------------------------------------------------------------------------------------


class _Frames:
    """Checks frames against the document's message payloads."""

    def __init__(self, document: dict[str, Any]) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        self._document = document
        self._validator = jsonschema.Draft202012Validator
        self.checked: set[str] = set()

    def check(self, message: str, frame: dict[str, Any]) -> None:
        """Fail unless `frame` is a valid `message` of the document (timestamps and dates in their formats too)."""
        root = {"$ref": f"#/components/messages/{message}/payload", "components": self._document["components"]}
        validator = self._validator(root, format_checker=self._validator.FORMAT_CHECKER)
        errors = [error.message for error in validator.iter_errors(frame)]
        assert not errors, f"{message}: {errors} in {frame}"
        self.checked.add(message)

    def frame(self, frame: dict[str, Any], command: str | None = None) -> None:
        """Fail unless `frame` is a valid message of the document; an event also one its channel lists."""
        if frame["type"] == "reply":
            self.check(f"reply.{command}" if frame["ok"] else "reply.error", frame)
        elif frame["type"] in ("event", "snapshot"):
            parsed = parse(frame["channel"])
            assert parsed is not None, frame
            kind = parsed.kind.replace(":", ".")
            events = STATION_EVENTS if kind == "branch.station" else "event."
            message = f"{events}{frame['event']}" if frame["type"] == "event" else f"snapshot.{kind}"
            assert message in self._document["channels"][kind]["messages"], f"{message} is not listed on {kind}"
            self.check(message, frame)
        else:
            self.check(frame["type"], frame)


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


def test_combos_are_in_the_document_as_fields_a_device_may_ignore(document: dict[str, Any]) -> None:
    """A menu item's `combo_slots`, a cart or order line's `components` and `cart.add`'s `components` are described,
    and none is required of what a device sends."""
    schemas = document["components"]["schemas"]
    assert "combo_slots" in schemas["MenuItem"]["properties"]
    for line in ("CartLineView", "OrderLineView", "ReceiptLine"):
        assert "components" in schemas[line]["properties"], line
    add = schemas["AddToCart"]
    assert "components" in add["properties"] and "components" not in add.get("required", [])
    assert set(schemas["ComponentIn"]["required"]) == {"slot_id", "item_id"}
    assert {"upcharge", "available", "option_groups"} <= set(schemas["MenuComboChoice"]["properties"])
