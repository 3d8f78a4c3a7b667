"""Writing a placed order (server/orders/order_inserts.py): one statement on PostgreSQL, several on SQLite."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from persistence import order_numbers
from persistence.base import utcnow
from persistence.enums import CartStatus, DeadlineKind
from persistence.order_records import read_order
from persistence.tables import Cart, Deadline, Order, OrderLine, OrderNumber
from server.domain.business_day import business_date
from server.payloads.order import order_data
from tests.locks import until_blocked_or_done
from tests.shop import LIMIT_S, Device, Shop


async def _cart(shop: Shop, *lines: dict[str, Any], kiosk: Device | None = None) -> dict[str, Any]:
    kiosk = kiosk or shop.kiosk
    cart = await shop.send(kiosk, "cart.create", {})
    for line in lines:
        cart = await shop.send(kiosk, "cart.add", {"cart_id": cart["id"], **line})
    return cart


async def _written(shop: Shop, order_id: int) -> dict[str, Any]:
    """The order as a read of its rows describes it."""
    async with shop.services.db.session() as session:
        order = await read_order(session, order_id)
    assert order is not None
    return order_data(order)


@pytest.mark.parametrize("count", [1, 3])
async def test_an_order_of_one_or_several_lines_reads_back_as_its_reply(shop: Shop, count: int) -> None:
    """The reply, built from what the statements returned, is the order as its rows hold it: lines in cart order,
    each with its own id; the cart ordered with its version raised; the payment deadline set."""
    every: list[dict[str, Any]] = [
        {"item_id": shop.burger, "qty": 2, "options": [shop.choices["Large"], shop.choices["Cheese"]]},
        {"item_id": shop.fries, "qty": 3},
        {"item_id": shop.cola},
    ]
    lines = every[:count]
    cart = await _cart(shop, *lines)
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert order == await _written(shop, order["id"])
    assert [line["item_id"] for line in order["lines"]] == [line["item_id"] for line in lines]
    assert len({line["id"] for line in order["lines"]}) == count
    assert (order["number"], order["version"], order["status"]) == (1, 1, "awaiting_payment")
    async with shop.services.db.session() as session:
        status, version = (await session.execute(select(Cart.status, Cart.version).where(Cart.id == cart["id"]))).one()
        deadline = await session.scalar(
            select(Deadline).where(Deadline.kind == DeadlineKind.ORDER_PAYMENT, Deadline.ref_id == order["id"])
        )
    assert (status, version) == (CartStatus.ORDERED, cart["version"] + 1)
    assert deadline is not None and deadline.done_at is None
    timeout = timedelta(seconds=shop.services.settings.ORDER_PAYMENT_TIMEOUT_S)
    created = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
    assert timedelta(0) <= deadline.due_at - (created + timeout) < timedelta(milliseconds=1)  # shown to the ms


async def _nothing_placed(shop: Shop, cart_id: int) -> None:
    """No order, no line, no number taken, no deadline; the cart still open."""
    async with shop.services.db.session() as session:
        for row in (Order, OrderLine, OrderNumber, Deadline):
            assert await session.scalar(select(func.count()).select_from(row)) == 0, row
        assert await session.scalar(select(Cart.status).where(Cart.id == cart_id)) == CartStatus.OPEN


async def test_a_refused_place_leaves_no_order_no_number_and_the_cart_open(shop: Shop) -> None:
    """`out_of_stock` and `price_changed` write nothing: the next place of the branch still gets number 1."""
    cart = await _cart(shop, {"item_id": shop.fries, "qty": 2}, {"item_id": shop.cola})
    await shop.set_item(shop.fries, stock=1)
    assert (await shop.error(shop.kiosk, "order.place", {"cart_id": cart["id"]}))["code"] == "out_of_stock"
    await _nothing_placed(shop, cart["id"])

    await shop.set_item(shop.fries, stock=10)
    wrong = {"cart_id": cart["id"], "expected_total": cart["total"] + 1}
    assert (await shop.error(shop.kiosk, "order.place", wrong))["code"] == "price_changed"
    await _nothing_placed(shop, cart["id"])

    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    assert order["number"] == 1 and await shop.stock(shop.fries) == 8


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_place_waits_for_the_branch_number_another_transaction_holds_and_takes_the_next(shop: Shop) -> None:
    """The number's upsert inside the merged statement waits for a concurrent taker of the branch's number and
    takes the one after it, as the upsert alone does."""
    cart = await _cart(shop, {"item_id": shop.cola})
    day = business_date(utcnow(), "Europe/Berlin")  # the shop's branch's time zone
    async with shop.services.db.session() as session:
        assert await order_numbers.next_number(session, shop.branch_id, day) == 1
        place = asyncio.create_task(shop.request(shop.kiosk, "order.place", {"cart_id": cart["id"]}))
        await until_blocked_or_done(shop.services.db, place, LIMIT_S)
        assert not place.done()
    reply = await asyncio.wait_for(place, LIMIT_S)
    assert reply["ok"], reply
    assert reply["data"]["number"] == 2


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_places_at_once_of_a_branch_get_consecutive_numbers(shop: Shop) -> None:
    """Two kiosks of a branch placing at the same moment: numbers 1 and 2, one order each, both carts ordered."""
    carts = [
        await _cart(shop, {"item_id": shop.fries}, kiosk=shop.kiosk),
        await _cart(shop, {"item_id": shop.fries, "qty": 2}, {"item_id": shop.cola}, kiosk=shop.kiosk2),
    ]
    orders = await asyncio.gather(
        shop.send(shop.kiosk, "order.place", {"cart_id": carts[0]["id"]}),
        shop.send(shop.kiosk2, "order.place", {"cart_id": carts[1]["id"]}),
    )
    assert sorted(order["number"] for order in orders) == [1, 2]
    assert [len(order["lines"]) for order in orders] == [1, 2]
    for order in orders:
        assert order == await _written(shop, order["id"])
    assert await shop.stock(shop.fries) == 7
