"""The payload models against the data the server really builds: nothing missing, nothing extra."""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
from datetime import date, timedelta
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy import select, update

from channels import names
from channels.names import parse
from persistence.base import utcnow
from persistence.enums import OrderStatus, PaymentMethod, PaymentStatus, ServiceMode
from persistence.tables import Item, Order, OrderLine, OutboxEvent, Payment
from server import payloads
from server.api.asyncapi_schemas import CHANNEL_EVENT_DATA, CHANNEL_EVENTS, EVENT_DATA
from server.auth.principals import Principal
from server.commands import command_registry
from server.domain.order_states import TRANSITIONS, OrderAction
from server.payloads.order import announce
from server.payloads.snapshots import SNAPSHOTS
from server.realtime.snapshots import Snapshots
from tests.commands.test_stations import stations
from tests.shop import Device, Shop
from tests.world import World

COMMANDS = command_registry()


LIMIT_S = 10
ITEMS = "/api/v1/items"


def kind_of(channel: str) -> str:
    """The kind of a channel name (`branch:menu`, `device`, ...)."""
    parsed = parse(channel)
    assert parsed is not None, channel
    return parsed.kind


def fits(model: type[BaseModel], data: Any) -> None:
    """Fail unless `data`, as JSON reaches a device, is exactly `model`: every field, no other, of the right type."""
    model.model_validate_json(json.dumps(data), strict=True)


def test_every_payload_model_forbids_extra_fields() -> None:
    """A field the server adds to its data cannot slip past a model of server/payloads/ unnoticed."""
    modules = [
        importlib.import_module(f"server.payloads.{info.name}") for info in pkgutil.iter_modules(payloads.__path__)
    ]
    models = {
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__
    }
    assert len(models) > 20
    for model in models:
        assert model.model_config.get("extra") == "forbid", model.__name__


def _order(status: OrderStatus) -> Order:
    """An order in memory with one line, as payloads.order reads it."""
    line = OrderLine(
        id=5, item_id=3, name="Cola", qty=1, unit_price=300, options=[], line_total=300, tax_rate_bp=1900, components=[]
    )
    return Order(
        id=1,
        version=1,
        number=7,
        business_date=date(2026, 11, 27),
        status=status,
        branch_id=1,
        device_id=2,
        cart_id=4,
        customer_name=None,
        currency="EUR",
        service_mode=ServiceMode.EAT_IN,
        subtotal=252,
        tax=48,
        taxes=[{"rate_bp": 1900, "net": 252, "tax": 48, "total": 300}],
        total=300,
        lines=[line],
        created_at=utcnow(),
    )


def test_channels_list_the_order_events_announce_emits() -> None:
    """Every served order move emits only events the document lists on each channel, with data fitting its model."""
    emitted: dict[str, set[str]] = {}

    def emit(channel: str, event: str, data: dict[str, Any]) -> None:
        emitted.setdefault(kind_of(channel), set()).add(event)
        fits(EVENT_DATA[event], data)

    announce(emit, _order(OrderStatus.AWAITING_PAYMENT))
    for (before, action), after in TRANSITIONS.items():
        announce(emit, _order(after), recalled=action == OrderAction.RECALL, previous=before)
    for kind, events in emitted.items():
        assert events <= set(CHANNEL_EVENTS[kind]), kind
    # A station's kitchen hears an order's moves from server/orders/station_progress.py, held to its model below.
    listed = {
        kind: {e for e in events if e.startswith(("order.", "board."))}
        for kind, events in CHANNEL_EVENTS.items()
        if kind not in CHANNEL_EVENT_DATA
    }
    assert {kind: events for kind, events in listed.items() if events} == emitted


def assert_versions_rise(events: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Fail unless, in commit order, each order, payment, cart and board entry changes only with a higher version.

    The same data may go out again (to several channels, or as `order.paid` and `order.queued`); a station's ticket
    of an order is another thing than the order, one per station.
    """
    held: dict[tuple[str, int, str], dict[str, Any]] = {}
    for channel, event, data in events:
        if "version" not in data:
            continue
        thing = event.partition(".")[0]
        at_station = channel if kind_of(channel) in CHANNEL_EVENT_DATA else ""
        key = ("ticket" if at_station else thing, data["order_id"] if thing == "board" else data["id"], at_station)
        before = held.get(key)
        if before is not None and data != before:
            assert data["version"] > before["version"], (event, before, data)
        held[key] = data
    assert {thing for thing, _, _ in held} == {"order", "payment", "cart", "board", "ticket"}


async def _send(shop: Shop, sender: Device | Principal, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Send a command that must succeed and hold its reply data to the command's reply model."""
    reply = await shop.send(sender, kind, data)
    model = COMMANDS.commands[kind].reply
    assert model is not None, kind
    fits(model, reply)
    return reply


async def _events(shop: Shop) -> list[tuple[str, str, dict[str, Any]]]:
    """Every event the server has emitted so far: channel, name and data."""
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [(row.channel, row.event, row.data) for row in rows]


async def test_replies_events_and_snapshots_fit_the_payload_models(
    shop: Shop, world: World, client: httpx.AsyncClient
) -> None:
    """Carts, orders in every state, board entries, menu events and every snapshot, as built, fit their models."""
    kiosk, kitchen = shop.kiosk, shop.kitchen
    await _send(shop, kiosk, "menu.get", {})

    # An order through every state, from a cart with options, a counted item and a customer.
    cart = await _send(shop, kiosk, "cart.create", {"customer_phone": shop.customer_phone})
    options = [shop.choices["Large"], shop.choices["Cheese"]]
    await _send(shop, kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger, "qty": 2, "options": options})
    cart = await _send(shop, kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
    assert cart["customer"] is not None and cart["lines"][0]["options"]
    fries = cart["lines"][1]["id"]
    cart = await _send(shop, kiosk, "cart.update", {"cart_id": cart["id"], "line_id": fries, "qty": 2})
    order = await _send(shop, kiosk, "order.place", {"cart_id": cart["id"], "expected_total": cart["total"]})
    await _send(shop, shop.staff, "order.mark_paid", {"order_id": order["id"]})
    for move in ("order.start", "order.ready", "order.recall", "order.ready", "order.complete"):
        await _send(shop, kitchen, move, {"order_id": order["id"]})

    # Open tickets in both board columns, a cancelled order, and one awaiting payment with a payment in flight.
    preparing, ready = await shop.paid_order(), await shop.paid_order()
    for move in ("order.start", "order.ready"):
        await _send(shop, kitchen, move, {"order_id": ready["id"]})
    for final in ("order.cancel", None):
        cart = await _send(shop, kiosk, "cart.create", {})
        await _send(shop, kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
        unpaid = await _send(shop, kiosk, "order.place", {"cart_id": cart["id"]})
        if final:
            cancelled = await _send(shop, kiosk, final, {"order_id": unpaid["id"]})
            assert cancelled["cancel_reason"] == "cancelled_by_kiosk"
    async with shop.services.db.session() as session:
        session.add(
            Payment(
                order_id=unpaid["id"],
                branch_id=shop.branch_id,
                method=PaymentMethod.TERMINAL,
                kiosk_id=kiosk.id,
                amount=unpaid["total"],
                currency="EUR",
                status=PaymentStatus.PENDING,
                idempotency_key="payloads-1",
            )
        )

    # An open cart whose line has a problem: its item was 86'd after it was added.
    cart = await _send(shop, kiosk, "cart.create", {})
    await _send(shop, kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
    await _send(shop, shop.staff, "item.set_available", {"item_id": shop.fries, "available": False})

    # The menu routes: an item changed, an item removed.
    async with asyncio.timeout(LIMIT_S):
        changed = await client.patch(f"{ITEMS}/{shop.burger}", json={"price": 950}, headers=world.admin.headers)
        removed = await client.delete(f"{ITEMS}/{shop.cola}", headers=world.admin.headers)
    assert (changed.status_code, removed.status_code) == (200, 204)

    # Payments through every state the terminal and the timeout can give them.
    await shop.terminal_online()
    terminal = shop.terminal
    burger = [{"item_id": shop.burger}]  # the cola is off the menu by now
    for result in ("approved", "declined", "cancel", "expire", "late"):
        order = await shop.placed_order(burger)
        payment = await _send(shop, kiosk, "payment.start", {"order_id": order["id"]})
        if result == "cancel":
            await _send(shop, kiosk, "payment.cancel", {"payment_id": payment["id"]})
            continue
        await _send(shop, terminal, "payment.progress", {"payment_id": payment["id"], "status": "processing"})
        if result in ("expire", "late"):
            await shop.services.deadlines.run_once(
                utcnow() + timedelta(seconds=shop.services.settings.PAYMENT_TIMEOUT_S + 1)
            )
        if result == "late":
            await _send(shop, shop.staff, "order.mark_paid", {"order_id": order["id"]})
        if result != "expire":
            verdict = "declined" if result == "declined" else "approved"
            await _send(shop, terminal, "payment.result", {"payment_id": payment["id"], "status": verdict})
    failed = await _send(shop, kiosk, "payment.start", {"order_id": (await shop.placed_order(burger))["id"]})
    await _send(shop, terminal, "payment.result", {"payment_id": failed["id"], "status": "failed"})

    # A paid order refunded by an admin.
    refundable = await shop.paid_order(burger)
    async with asyncio.timeout(LIMIT_S):
        refunded = await client.post(f"/api/v1/orders/{refundable['id']}/refund", headers=world.admin.headers)
    assert refunded.status_code == 200, refunded.text

    # Kitchen stations: a ticket bumped (the order made ready), another bumped at one station and taken back.
    kitchen_stations = await stations(shop)
    grill = kitchen_stations.displays["grill"]
    await shop.set_item(shop.fries, available=True)  # for a moment, to be at a second station
    async with shop.services.db.session() as session:
        await session.execute(update(Item).where(Item.id == shop.fries).values(station="drinks"))
    one = await shop.paid_order(burger)
    await _send(shop, grill, "station.bump", {"order_id": one["id"]})
    two = await shop.paid_order([*burger, {"item_id": shop.fries}])
    await _send(shop, grill, "station.bump", {"order_id": two["id"]})
    await _send(shop, grill, "station.recall", {"order_id": two["id"]})
    await shop.set_item(shop.fries, available=False)  # 86'd again, as the open cart above shows it

    events = await _events(shop)
    for channel, event, data in events:
        kind = kind_of(channel)
        assert event in CHANNEL_EVENTS[kind], (channel, event)
        fits(CHANNEL_EVENT_DATA.get(kind, EVENT_DATA[event]), data)
    presence = {"device.online", "device.offline"}  # not from the database: the live test in tests/api checks them
    assert {event for _, event, _ in events} == set(EVENT_DATA) - presence
    assert {data["column"] for _, event, data in events if event == "board.updated"} == {"preparing", "ready", None}
    assert_versions_rise(events)

    snapshots = Snapshots(shop.services.db, shop.services.presence, shop.services.settings)
    channels = [
        names.branch_menu(shop.branch_id),
        names.branch_kitchen(shop.branch_id),
        names.branch_board(shop.branch_id),
        names.branch_orders(shop.branch_id),
        names.branch_devices(shop.branch_id),
        names.branch_station(shop.branch_id, "grill"),
        names.device(kiosk.id),
    ]
    taken: dict[str, Any] = {}
    for name in channels:
        parsed = parse(name)
        assert parsed is not None
        async with asyncio.timeout(LIMIT_S):
            taken[parsed.kind] = await snapshots.snapshot(parsed)
        fits(SNAPSHOTS[parsed.kind], taken[parsed.kind])
    assert set(taken) == set(SNAPSHOTS)
    # Rows in every list, so that the models of the rows were held to real data too.
    assert [t["id"] for t in taken["branch:kitchen"]["tickets"]][:2] == [preparing["id"], ready["id"]]
    board = taken["branch:board"]
    assert (board["preparing"][0]["order_id"], board["ready"][0]["order_id"]) == (preparing["id"], ready["id"])
    assert taken["branch:orders"]["orders"] and taken["branch:devices"]["devices"]
    station = [(t["id"], t["status"], t["bumped_at"] is None) for t in taken["branch:station"]["tickets"]]
    assert station == [(one["id"], "ready", False), (two["id"], "preparing", True)]
    device = taken["device"]
    assert all(device[key] for key in ("carts", "orders", "payments"))
    assert device["carts"][0]["lines"][0]["problem"]["code"] == "unavailable"
    assert taken["branch:menu"]["categories"][0]["items"][0]["option_groups"][0]["choices"]
