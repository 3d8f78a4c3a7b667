"""Order commands (server/commands/orders.py): placing with stock reservation, cancelling, paying at the counter."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from channels import names
from channels.names import parse
from persistence.base import utcnow
from persistence.enums import DeadlineKind, PaymentMethod, PaymentStatus
from persistence.tables import (
    Cart,
    CartLine,
    Deadline,
    Item,
    ItemAvailability,
    OptionChoice,
    Order,
    OrderNumber,
    OutboxEvent,
    Payment,
)
from server.realtime.snapshots import Snapshots
from tests.locks import until_blocked_or_done
from tests.shop import LIMIT_S, Shop, principal_of
from tests.world import World


async def cart_with(shop: Shop, *lines: dict[str, Any]) -> dict[str, Any]:
    """A cart of the first kiosk holding `lines`."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    for line in lines:
        cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], **line})
    return cart


async def events(shop: Shop) -> list[tuple[str, str, dict[str, Any]]]:
    """Every outbox event: channel, name and data."""
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [(row.channel, row.event, row.data) for row in rows]


async def test_placing_freezes_the_priced_lines_and_awaits_payment(shop: Shop) -> None:
    """order.place answers an order awaiting payment with the cart's lines, totals, number and business day."""
    cart = await cart_with(
        shop,
        {"item_id": shop.burger, "qty": 2, "options": [shop.choices["Large"], shop.choices["Cheese"]]},
        {"item_id": shop.fries, "qty": 3},
    )
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"], "expected_total": cart["total"]})
    assert (order["status"], order["number"], order["currency"]) == ("awaiting_payment", 1, "EUR")
    assert (order["subtotal"], order["tax"], order["total"]) == (cart["subtotal"], cart["tax"], cart["total"])
    assert order["total"] == 2 * (900 + 150 + 100) + 3 * 350
    assert [(line["name"], line["qty"], line["unit_price"]) for line in order["lines"]] == [
        ("Burger", 2, 1150),
        ("Fries", 3, 350),
    ]
    assert [o["name"] for o in order["lines"][0]["options"]] == ["Large", "Cheese"]
    assert order["business_date"] == utcnow().astimezone(ZoneInfo("Europe/Berlin")).date().isoformat()
    assert await shop.stock(shop.fries) == 7
    # The cart is used up.
    error = await shop.error(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    assert (error["code"], error["details"]["status"]) == ("conflict", "ordered")


async def test_placing_emits_to_the_kiosk_staff_and_menu(shop: Shop) -> None:
    """order.placed reaches the kiosk and branch staff; the reserved item's stock.changed reaches the menu."""
    await shop.set_item(shop.fries, stock=2)
    cart = await cart_with(shop, {"item_id": shop.fries, "qty": 2})
    before = len(await events(shop))
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    emitted = (await events(shop))[before:]
    assert (names.device(shop.kiosk.id), "order.placed", order) in emitted
    assert (names.branch_orders(shop.branch_id), "order.placed", order) in emitted
    stock_events = [data for channel, event, data in emitted if event == "stock.changed"]
    assert stock_events == [
        {"branch_id": shop.branch_id, "item_id": shop.fries, "available": True, "stock": 0, "orderable": False}
    ]
    assert not [
        e for e in emitted if e[0] in (names.branch_kitchen(shop.branch_id), names.branch_board(shop.branch_id))
    ]
    # The kiosk's cart is now ordered and shows no problem, although the stock it took is gone from the shelf.
    ordered = [data for channel, event, data in emitted if event == "cart.updated"]
    assert [(c["id"], c["status"], c["lines"][0]["problem"]) for c in ordered] == [(cart["id"], "ordered", None)]


async def test_order_numbers_count_up_per_branch_and_restart_each_business_day(shop: Shop) -> None:
    """Numbers go 1, 2, 3 within a business day; an order of the next day starts again at 1."""
    numbers = []
    for _ in range(3):
        cart = await cart_with(shop, {"item_id": shop.cola})
        numbers.append((await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]}))["number"])
    assert numbers == [1, 2, 3]
    async with shop.services.db.session() as session:
        # Make today's orders an earlier day's: today's counter starts afresh.
        await session.execute(update(Order).values(business_date=date(2000, 1, 1)))
        await session.execute(update(OrderNumber).values(business_date=date(2000, 1, 1)))
    cart = await cart_with(shop, {"item_id": shop.cola})
    assert (await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]}))["number"] == 1


async def test_an_empty_cart_is_invalid(shop: Shop) -> None:
    """Placing a cart without lines is `invalid` and leaves the cart open."""
    cart = await cart_with(shop)
    error = await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert error["code"] == "invalid"
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})


async def test_a_price_changed_while_the_cart_was_open_is_price_changed(shop: Shop) -> None:
    """The kiosk's expected_total no longer matches: `price_changed` with the new totals; nothing reserved."""
    cart = await cart_with(shop, {"item_id": shop.fries, "qty": 2})
    async with shop.services.db.session() as session:
        await session.execute(update(Item).where(Item.id == shop.fries).values(price=400))
    error = await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"], "expected_total": cart["total"]})
    assert error["code"] == "price_changed"
    details = error["details"]
    assert (details["expected_total"], details["total"]) == (700, 800)
    assert details["subtotal"] + details["tax"] == 800
    assert details["cart"]["lines"][0]["unit_price"] == 400
    assert await shop.stock(shop.fries) == 10
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"], "expected_total": 800})
    assert order["total"] == 800


async def test_an_option_price_change_is_a_price_change_too(shop: Shop) -> None:
    """A choice's delta changed: the total differs and the place is refused with `price_changed`."""
    cart = await cart_with(shop, {"item_id": shop.burger, "options": [shop.choices["Large"]]})
    async with shop.services.db.session() as session:
        await session.execute(
            update(OptionChoice).where(OptionChoice.id == shop.choices["Large"]).values(price_delta=300)
        )
    error = await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"], "expected_total": cart["total"]})
    assert (error["code"], error["details"]["total"]) == ("price_changed", 1200)


async def test_an_item_86d_while_in_the_cart_fails_the_place_naming_it(shop: Shop) -> None:
    """An item switched off after it was added: `out_of_stock` naming it, nothing else reserved."""
    cart = await cart_with(shop, {"item_id": shop.fries, "qty": 2}, {"item_id": shop.cola})
    await shop.set_item(shop.cola, available=False)
    error = await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert error["code"] == "out_of_stock"
    assert error["details"]["items"] == [
        {"item_id": shop.cola, "name": "Cola", "requested": 1, "left": 0, "reason": "unavailable"}
    ]
    assert await shop.stock(shop.fries) == 10


async def test_short_stock_names_each_short_item_and_reserves_nothing(shop: Shop) -> None:
    """Two counted items both short: both named with what is left; the other item's stock is untouched."""
    cart = await cart_with(shop, {"item_id": shop.fries, "qty": 5}, {"item_id": shop.burger, "qty": 3})
    await shop.set_item(shop.burger, stock=2)
    await shop.set_item(shop.fries, stock=4)
    error = await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert error["code"] == "out_of_stock"
    assert sorted((i["name"], i["requested"], i["left"]) for i in error["details"]["items"]) == [
        ("Burger", 3, 2),
        ("Fries", 5, 4),
    ]
    assert (await shop.stock(shop.burger), await shop.stock(shop.fries)) == (2, 4)


async def test_a_place_that_waited_for_a_cart_change_orders_the_cart_as_changed(shop: Shop) -> None:
    """order.place waiting for the cart's lock (a change from the kiosk's other connection) orders the committed
    lines, not those it would have read before waiting."""
    cart = await cart_with(shop, {"item_id": shop.fries, "qty": 1})
    async with shop.services.db.session() as session:
        await session.get(Cart, cart["id"], with_for_update=True)
        session.add(CartLine(cart_id=cart["id"], item_id=shop.cola, qty=2, choice_ids=[]))
        place = asyncio.create_task(shop.request(shop.kiosk, "order.place", {"cart_id": cart["id"]}))
        await asyncio.sleep(0.3)  # the place has begun and waits for the cart
        assert not place.done()
    reply = await asyncio.wait_for(place, 10)
    assert reply["ok"], reply
    assert sorted((line["item_id"], line["qty"]) for line in reply["data"]["lines"]) == [
        (shop.fries, 1),
        (shop.cola, 2),
    ]


async def test_a_retried_place_returns_the_same_order(shop: Shop) -> None:
    """The same command id twice creates one order and reserves once: the retry gets the stored reply."""
    cart = await cart_with(shop, {"item_id": shop.fries, "qty": 2})
    first = await shop.request(shop.kiosk, "order.place", {"cart_id": cart["id"]}, command_id="place-1")
    again = await shop.request(shop.kiosk, "order.place", {"cart_id": cart["id"]}, command_id="place-1")
    assert first["ok"] and again == first
    assert await shop.stock(shop.fries) == 8
    async with shop.services.db.session() as session:
        assert len((await session.scalars(select(Order))).all()) == 1


async def test_cancel_gives_the_stock_back_and_ends_the_deadline(shop: Shop) -> None:
    """order.cancel: cancelled, stock returned with stock.changed, the payment deadline done; twice is `conflict`."""
    cart = await cart_with(shop, {"item_id": shop.fries, "qty": 4})
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert await shop.stock(shop.fries) == 6
    cancelled = await shop.send(shop.kiosk, "order.cancel", {"order_id": order["id"]})
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "cancelled_by_kiosk")
    assert cancelled["cancelled_at"] is not None
    assert await shop.stock(shop.fries) == 10
    returned = [data for channel, event, data in await events(shop) if event == "stock.changed"][-1]
    assert (returned["item_id"], returned["stock"]) == (shop.fries, 10)
    async with shop.services.db.session() as session:
        deadline = await session.scalar(select(Deadline).where(Deadline.ref_id == order["id"]))
    assert deadline is not None and deadline.kind == DeadlineKind.ORDER_PAYMENT and deadline.done_at is not None
    error = await shop.error(shop.kiosk, "order.cancel", {"order_id": order["id"]})
    assert (error["code"], error["details"]["status"]) == ("conflict", "cancelled")


async def test_only_the_kiosk_that_placed_an_order_may_cancel_it(shop: Shop) -> None:
    """Another kiosk gets `not_found`; a paid order is `conflict`."""
    cart = await cart_with(shop, {"item_id": shop.cola})
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert (await shop.error(shop.kiosk2, "order.cancel", {"order_id": order["id"]}))["code"] == "not_found"
    await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    assert (await shop.error(shop.kiosk, "order.cancel", {"order_id": order["id"]}))["code"] == "conflict"


async def test_mark_paid_records_cash_and_sends_the_order_to_the_kitchen(shop: Shop) -> None:
    """order.mark_paid: a cash payment approved for the total; order.queued on the kitchen, the board shows it."""
    cart = await cart_with(shop, {"item_id": shop.cola, "qty": 2})
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    before = len(await events(shop))
    paid = await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    assert paid["status"] == "paid" and paid["paid_at"] is not None
    async with shop.services.db.session() as session:
        payment = await session.scalar(select(Payment).where(Payment.order_id == order["id"]))
    assert payment is not None
    assert (payment.method, payment.status, payment.amount) == (PaymentMethod.CASH, PaymentStatus.APPROVED, 600)
    emitted = {(channel, event) for channel, event, _ in (await events(shop))[before:]}
    assert emitted == {
        (names.branch_kitchen(shop.branch_id), "order.queued"),
        (names.branch_orders(shop.branch_id), "order.paid"),
        (names.device(shop.kiosk.id), "order.paid"),
        (names.branch_board(shop.branch_id), "board.updated"),
    }
    error = await shop.error(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    assert (error["code"], error["details"]["status"]) == ("conflict", "paid")


async def test_a_lines_note_goes_onto_the_order_and_the_kitchens_ticket(shop: Shop) -> None:
    """The customer's note of a cart line is its order line's: in the placed order, in the row, in `order.queued` on
    the kitchen once paid, in the kitchen's snapshot and through its moves; a line without one has null."""
    cart = await cart_with(
        shop,
        {"item_id": shop.burger, "note": "no peanuts please"},
        {"item_id": shop.burger},
        {"item_id": shop.cola, "qty": 2},
    )
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"], "expected_total": cart["total"]})
    notes = [(line["name"], line["qty"], line["note"]) for line in order["lines"]]
    assert notes == [("Burger", 1, "no peanuts please"), ("Burger", 1, None), ("Cola", 2, None)]
    async with shop.services.db.session() as session:
        stored = (await session.scalars(select(Order).where(Order.id == order["id"]))).one()
        assert [line.note for line in stored.lines] == ["no peanuts please", None, None]
    before = len(await events(shop))
    paid = await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    [queued] = [data for channel, event, data in (await events(shop))[before:] if event == "order.queued"]
    assert queued == paid
    assert [line["note"] for line in queued["lines"]] == ["no peanuts please", None, None]
    snapshots = Snapshots(shop.services.db, shop.services.presence, shop.services.settings)
    kitchen = parse(names.branch_kitchen(shop.branch_id))
    assert kitchen is not None
    [ticket] = (await asyncio.wait_for(snapshots.snapshot(kitchen), LIMIT_S))["tickets"]
    assert ticket == paid
    started = await shop.send(shop.kitchen, "order.start", {"order_id": order["id"]})
    assert [line["note"] for line in started["lines"]] == ["no peanuts please", None, None]


async def test_mark_paid_is_for_staff_of_the_branch(shop: Shop, world: World) -> None:
    """Kiosks may not mark paid; staff of another branch get `not_found`, as for an order that does not exist."""
    cart = await cart_with(shop, {"item_id": shop.cola})
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert (await shop.error(shop.kiosk, "order.mark_paid", {"order_id": order["id"]}))["code"] == "forbidden"
    staff_b = await principal_of(shop.services, world.staff_b.headers["Authorization"].split()[1])
    assert (await shop.error(staff_b, "order.mark_paid", {"order_id": order["id"]}))["code"] == "not_found"


async def test_the_payment_timeout_cancels_an_unpaid_order_and_returns_stock(shop: Shop) -> None:
    """A due ORDER_PAYMENT deadline cancels the order with reason payment_timeout; a paid order is left alone."""
    unpaid = await shop.send(
        shop.kiosk, "order.place", {"cart_id": (await cart_with(shop, {"item_id": shop.fries}))["id"]}
    )
    paid = await shop.paid_order([{"item_id": shop.fries, "qty": 2}])
    assert await shop.stock(shop.fries) == 7
    later = utcnow() + timedelta(seconds=shop.services.settings.ORDER_PAYMENT_TIMEOUT_S + 1)
    assert await shop.services.deadlines.run_once(later) == 1
    async with shop.services.db.session() as session:
        statuses = {
            order_id: status for order_id, status in (await session.execute(select(Order.id, Order.status))).all()
        }
        reason = await session.scalar(select(Order.cancel_reason).where(Order.id == unpaid["id"]))
    assert (statuses[unpaid["id"]], statuses[paid["id"]], reason) == ("cancelled", "paid", "payment_timeout")
    assert await shop.stock(shop.fries) == 8
    assert await shop.services.deadlines.run_once(later) == 0


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_timeout_passes_over_an_order_another_transaction_holds(shop: Shop) -> None:
    """An order held (as one being paid at the counter is) when its payment time runs out: the worker does not wait
    for it, which would deadlock with that transaction finishing the same deadline, and cancels it on a later pass."""
    unpaid = await shop.send(
        shop.kiosk, "order.place", {"cart_id": (await cart_with(shop, {"item_id": shop.fries}))["id"]}
    )
    later = utcnow() + timedelta(seconds=shop.services.settings.ORDER_PAYMENT_TIMEOUT_S + 1)
    assert await shop.deadlines_while_held(Order, unpaid["id"], later) == 0
    assert await shop.services.deadlines.run_once(later) == 1
    async with shop.services.db.session() as session:
        assert await session.scalar(select(Order.status).where(Order.id == unpaid["id"])) == "cancelled"


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_each_timed_out_order_is_cancelled_and_its_stock_given_back_in_a_transaction_of_its_own(
    shop: Shop,
) -> None:
    """Two orders time out: the first (cola) gives back while the second (fries, a lower item id) waits for a row
    an order being placed holds. The first's stock is back for everyone at once: given back in one transaction
    with the second's, out of item order, it could deadlock with an order taking fries and then cola."""
    await shop.set_item(shop.cola, stock=5)
    first, second = [
        await shop.send(shop.kiosk, "order.place", {"cart_id": (await cart_with(shop, {"item_id": item}))["id"]})
        for item in (shop.cola, shop.fries)
    ]
    later = utcnow() + timedelta(seconds=shop.services.settings.ORDER_PAYMENT_TIMEOUT_S + 1)
    async with shop.services.db.session() as holder:
        await holder.execute(
            select(ItemAvailability)
            .where(ItemAvailability.branch_id == shop.branch_id, ItemAvailability.item_id == shop.fries)
            .with_for_update()
        )
        worker = asyncio.create_task(shop.services.deadlines.run_once(later))
        await until_blocked_or_done(shop.services.db, worker, LIMIT_S)
        assert not worker.done()
        assert await shop.stock(shop.cola) == 5
    assert await asyncio.wait_for(worker, LIMIT_S) == 2
    assert await shop.stock(shop.fries) == 10
    async with shop.services.db.session() as session:
        statuses = await session.scalars(select(Order.status).where(Order.id.in_([first["id"], second["id"]])))
        assert set(statuses) == {"cancelled"}


async def test_the_timeout_spares_an_order_with_a_payment_in_flight(shop: Shop) -> None:
    """An order whose payment is pending is not cancelled by the timeout; its deadline moves on."""
    order = await shop.send(
        shop.kiosk, "order.place", {"cart_id": (await cart_with(shop, {"item_id": shop.cola}))["id"]}
    )
    async with shop.services.db.session() as session:
        session.add(
            Payment(
                order_id=order["id"],
                branch_id=shop.branch_id,
                method=PaymentMethod.TERMINAL,
                amount=order["total"],
                currency="EUR",
                status=PaymentStatus.PENDING,
                idempotency_key="k1",
            )
        )
    later = utcnow() + timedelta(seconds=shop.services.settings.ORDER_PAYMENT_TIMEOUT_S + 1)
    assert await shop.services.deadlines.run_once(later) == 0
    async with shop.services.db.session() as session:
        status = await session.scalar(select(Order.status).where(Order.id == order["id"]))
        due = await session.scalar(select(Deadline.due_at).where(Deadline.ref_id == order["id"]))
    assert status == "awaiting_payment"
    assert due is not None and due > later
    assert (await shop.error(shop.kiosk, "order.cancel", {"order_id": order["id"]}))["code"] == "conflict"
