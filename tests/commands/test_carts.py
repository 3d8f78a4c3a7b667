"""Cart commands (server/commands/carts.py): stored carts, priced by the server, with options checked."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from channels import names
from persistence.base import utcnow
from persistence.enums import CartStatus
from persistence.tables import Cart, CartLine, OutboxEvent
from tests.locks import until_blocked_or_done
from tests.shop import LIMIT_S, Shop


async def test_a_new_cart_is_empty_and_priced_in_the_branch_currency(shop: Shop) -> None:
    """cart.create answers an open, empty cart of the kiosk's branch with zero totals and an expiry."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    assert cart["status"] == "open"
    assert (cart["branch_id"], cart["device_id"], cart["currency"]) == (shop.branch_id, shop.kiosk.id, "EUR")
    assert (cart["lines"], cart["subtotal"], cart["tax"], cart["total"]) == ([], 0, 0, 0)
    assert cart["expires_at"] > cart["updated_at"]


async def test_lines_are_priced_from_the_menu_with_option_deltas_and_tax_included(shop: Shop) -> None:
    """unit = price + deltas, line = unit x qty, total = sum; tax is the 19 % contained in the total."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    picked = [shop.choices["Large"], shop.choices["Cheese"], shop.choices["Bacon"]]
    await shop.send(
        shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger, "qty": 2, "options": picked}
    )
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola, "qty": 3})
    burger, cola = cart["lines"]
    assert (burger["item_price"], burger["unit_price"], burger["line_total"]) == (900, 1350, 2700)
    assert [o["name"] for o in burger["options"]] == ["Large", "Cheese", "Bacon"]
    assert burger["options"][0] == {
        "choice_id": shop.choices["Large"],
        "group_id": burger["options"][0]["group_id"],
        "group": "Size",
        "name": "Large",
        "price_delta": 150,
    }
    assert (cola["unit_price"], cola["line_total"]) == (300, 900)
    assert cart["total"] == 3600
    assert cart["tax"] == 575  # 3600 x 1900 / 11900 = 574.79...
    assert cart["subtotal"] + cart["tax"] == cart["total"]


async def test_options_left_out_take_the_defaults(shop: Shop) -> None:
    """cart.add without `options` picks every group's default choices."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger, "qty": 1})
    assert [o["name"] for o in cart["lines"][0]["options"]] == ["Regular"]
    assert cart["total"] == 900


async def test_invalid_options_are_refused_with_each_problem(shop: Shop) -> None:
    """Too many extras, no size and an unknown choice: `invalid` naming every problem, nothing added."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    options = [shop.choices["Cheese"], shop.choices["Bacon"], 99999]
    error = await shop.error(
        shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger, "options": options}
    )
    assert error["code"] == "invalid"
    rules = sorted(e["type"] for e in error["details"]["errors"])
    assert rules == ["selection", "unknown_choice"]
    assert any("Size" in e["message"] for e in error["details"]["errors"])
    error = await shop.error(
        shop.kiosk,
        "cart.add",
        {"cart_id": cart["id"], "item_id": shop.burger, "options": [shop.choices["Regular"], shop.choices["Large"]]},
    )
    assert "Size: pick at most 1" in error["message"]
    assert (await shop.send(shop.kiosk2, "cart.create", {}))["lines"] == []


async def test_the_same_item_with_the_same_options_adds_to_its_line(shop: Shop) -> None:
    """Adding a cola twice gives one line of 2; a burger with other options gets a line of its own."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    for _ in range(2):
        cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola, "qty": 1})
    assert [(line["item_id"], line["qty"]) for line in cart["lines"]] == [(shop.cola, 2)]
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger})
    large = [shop.choices["Large"]]
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger, "options": large})
    assert len(cart["lines"]) == 3


async def test_a_note_keeps_its_line_apart_and_only_the_same_note_adds_to_it(shop: Shop) -> None:
    """A burger with the customer's note is a line of its own beside the same burger without a note and with
    another note; the same note again adds to its line. Lines show the note stripped, or null."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    burger = {"cart_id": cart["id"], "item_id": shop.burger}
    await shop.send(shop.kiosk, "cart.add", burger)
    await shop.send(shop.kiosk, "cart.add", {**burger, "note": "  no peanuts please\n"})
    await shop.send(shop.kiosk, "cart.add", burger)
    await shop.send(shop.kiosk, "cart.add", {**burger, "note": "no sesame"})
    cart = await shop.send(shop.kiosk, "cart.add", {**burger, "qty": 2, "note": "no peanuts please"})
    assert [(line["item_id"], line["qty"], line["note"]) for line in cart["lines"]] == [
        (shop.burger, 2, None),
        (shop.burger, 3, "no peanuts please"),
        (shop.burger, 1, "no sesame"),
    ]
    assert cart["total"] == 6 * 900
    async with shop.services.db.session() as session:
        stored = (await session.scalars(select(CartLine.note).order_by(CartLine.id))).all()
    assert stored == [None, "no peanuts please", "no sesame"]


@pytest.mark.parametrize("note", ["", "   ", "x" * 201, 7])
async def test_a_note_empty_once_stripped_too_long_or_not_text_is_invalid(shop: Shop, note: object) -> None:
    """`note` holds 1 to 200 characters once the spaces around it are stripped; anything else is `invalid` naming
    it, and adds nothing. 200 characters with spaces around them fit."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    add = {"cart_id": cart["id"], "item_id": shop.cola}
    error = await shop.error(shop.kiosk, "cart.add", {**add, "note": note})
    assert error["code"] == "invalid"
    assert [e["field"] for e in error["details"]["errors"]] == ["note"]
    cart = await shop.send(shop.kiosk, "cart.add", {**add, "note": f" {'x' * 200} "})
    assert [line["note"] for line in cart["lines"]] == ["x" * 200]


async def test_update_changes_quantity_and_zero_removes_the_line(shop: Shop) -> None:
    """cart.update sets a line's qty; qty 0 removes it; a line of another cart is not found."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    line_id = cart["lines"][0]["id"]
    cart = await shop.send(shop.kiosk, "cart.update", {"cart_id": cart["id"], "line_id": line_id, "qty": 4})
    assert (cart["lines"][0]["qty"], cart["total"]) == (4, 1200)
    cart = await shop.send(shop.kiosk, "cart.update", {"cart_id": cart["id"], "line_id": line_id, "qty": 0})
    assert (cart["lines"], cart["total"]) == ([], 0)
    error = await shop.error(shop.kiosk, "cart.update", {"cart_id": cart["id"], "line_id": line_id, "qty": 1})
    assert error["code"] == "not_found"


async def test_stock_is_checked_when_adding_and_raising_quantities(shop: Shop) -> None:
    """More fries than the 10 left, in one add or by raising a line, is `out_of_stock` with what is left."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    error = await shop.error(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 11})
    assert error["code"] == "out_of_stock"
    assert error["details"]["items"] == [{"item_id": shop.fries, "name": "Fries", "requested": 11, "left": 10}]
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 10})
    line_id = cart["lines"][0]["id"]
    error = await shop.error(shop.kiosk, "cart.update", {"cart_id": cart["id"], "line_id": line_id, "qty": 11})
    assert error["code"] == "out_of_stock"


async def test_an_86d_item_cannot_be_added_and_an_unoffered_one_is_not_found(shop: Shop) -> None:
    """An item switched off is `out_of_stock` (0 left); one the branch does not sell is `not_found`."""
    await shop.set_item(shop.cola, available=False)
    cart = await shop.send(shop.kiosk, "cart.create", {})
    error = await shop.error(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    assert (error["code"], error["details"]["items"][0]["left"]) == ("out_of_stock", 0)
    error = await shop.error(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": 424242})
    assert error["code"] == "not_found"


async def test_a_cart_belongs_to_its_kiosk(shop: Shop) -> None:
    """Another kiosk gets `not_found` for a cart it did not create; other device kinds are `forbidden`."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    error = await shop.error(shop.kiosk2, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    assert error["code"] == "not_found"
    assert (await shop.error(shop.kitchen, "cart.create", {}))["code"] == "forbidden"
    assert (await shop.error(shop.staff, "cart.create", {}))["code"] == "forbidden"


async def test_bad_data_is_invalid_with_the_field(shop: Shop) -> None:
    """qty 0 or 100, a missing item_id and unknown fields are `invalid` naming the field."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    for data, field in (
        ({"cart_id": cart["id"], "item_id": shop.cola, "qty": 0}, "qty"),
        ({"cart_id": cart["id"], "item_id": shop.cola, "qty": 100}, "qty"),
        ({"cart_id": cart["id"]}, "item_id"),
        ({"cart_id": cart["id"], "item_id": shop.cola, "price": 1}, "price"),
    ):
        error = await shop.error(shop.kiosk, "cart.add", data)
        assert error["code"] == "invalid"
        assert field in [e["field"] for e in error["details"]["errors"]]


async def test_a_known_customer_is_attached_by_phone(shop: Shop) -> None:
    """cart.set_customer normalises the phone and shows the customer's name; an unknown phone is `not_found`."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    cart = await shop.send(shop.kiosk, "cart.set_customer", {"cart_id": cart["id"], "phone": shop.customer_phone})
    assert (cart["customer_phone"], cart["customer"]["name"]) == ("+4930123456", "Ana")
    error = await shop.error(shop.kiosk, "cart.set_customer", {"cart_id": cart["id"], "phone": "+4930999999"})
    assert error["code"] == "not_found"
    error = await shop.error(shop.kiosk, "cart.set_customer", {"cart_id": cart["id"], "phone": "12"})
    assert error["code"] == "invalid"
    cart = await shop.send(shop.kiosk, "cart.set_customer", {"cart_id": cart["id"], "phone": None})
    assert cart["customer"] is None
    created = await shop.send(shop.kiosk, "cart.create", {"customer_phone": "0049 30 123456"})
    assert created["customer"]["name"] == "Ana"


async def test_every_change_is_announced_to_the_kiosk_channel(shop: Shop) -> None:
    """Each cart change emits `cart.updated` with the reply's data on the kiosk's device channel."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    assert [(r.channel, r.event) for r in rows] == [(names.device(shop.kiosk.id), "cart.updated")] * 2
    assert rows[-1].data == cart


async def test_idle_carts_expire_and_the_kiosk_hears_it(shop: Shop) -> None:
    """A cart unchanged for CART_IDLE_TIMEOUT_S is expired by the deadline worker; it then refuses changes."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    fresh = await shop.send(shop.kiosk, "cart.create", {})
    idle_s = shop.services.settings.CART_IDLE_TIMEOUT_S
    async with shop.services.db.session() as session:
        old = utcnow() - timedelta(seconds=idle_s + 1)
        await session.execute(update(Cart).where(Cart.id == cart["id"]).values(updated_at=old))
    assert await shop.services.deadlines.run_once() == 1
    async with shop.services.db.session() as session:
        statuses = {cart_id: status for cart_id, status in (await session.execute(select(Cart.id, Cart.status))).all()}
        expired = (
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.event == "cart.updated").order_by(OutboxEvent.id)
            )
        ).all()[-1]
    assert statuses == {cart["id"]: CartStatus.EXPIRED, fresh["id"]: CartStatus.OPEN}
    assert (expired.data["id"], expired.data["status"]) == (cart["id"], "expired")
    assert expired.data["version"] > cart["version"]  # the worker's UPDATE raised it too
    error = await shop.error(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    assert (error["code"], error["details"]["status"]) == ("conflict", "expired")


async def test_a_refused_change_leaves_the_cart_as_it_was(shop: Shop) -> None:
    """A change refused after the cart was locked (its lock is its change) is rolled back: the version the next
    change answers is one above the last one answered."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    cart = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 2})
    line_id = cart["lines"][0]["id"]
    refusals = [
        ("cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 9}, "out_of_stock"),
        ("cart.add", {"cart_id": cart["id"], "item_id": 999999}, "not_found"),
        ("cart.update", {"cart_id": cart["id"], "line_id": line_id + 1000, "qty": 1}, "not_found"),
        ("cart.set_customer", {"cart_id": cart["id"], "phone": "+4930999999"}, "not_found"),
        ("cart.set_customer", {"cart_id": cart["id"], "phone": "12"}, "invalid"),
    ]
    for kind, data, code in refusals:
        assert (await shop.error(shop.kiosk, kind, data))["code"] == code
    after = await shop.send(shop.kiosk, "cart.update", {"cart_id": cart["id"], "line_id": line_id, "qty": 3})
    assert (after["version"], after["customer"], after["lines"][0]["qty"]) == (cart["version"] + 1, None, 3)
    assert after["updated_at"] >= cart["updated_at"]


async def test_another_kiosks_cart_is_not_found_before_the_phone_is_judged(shop: Shop) -> None:
    """cart.set_customer on another kiosk's cart is `not_found` for the cart, whatever the phone."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    for phone in ("+4930999999", "12", shop.customer_phone, None):
        error = await shop.error(shop.kiosk2, "cart.set_customer", {"cart_id": cart["id"], "phone": phone})
        assert (error["code"], error["details"]) == ("not_found", {"cart_id": cart["id"]})
    again = await shop.send(shop.kiosk, "cart.set_customer", {"cart_id": cart["id"], "phone": None})
    assert again["version"] == cart["version"] + 1


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_an_add_that_waited_for_the_cart_adds_to_the_committed_lines(shop: Shop) -> None:
    """cart.add waiting for the cart's lock (a change from the kiosk's other connection) sees the line committed
    meanwhile: the same item joins that line instead of starting a second one."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    async with shop.services.db.session() as session:
        await session.get(Cart, cart["id"], with_for_update=True)
        session.add(CartLine(cart_id=cart["id"], item_id=shop.cola, qty=2, choice_ids=[]))
        await session.flush()
        add = asyncio.create_task(
            shop.request(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola, "qty": 1})
        )
        await until_blocked_or_done(shop.services.db, add, LIMIT_S)
        assert not add.done()
    reply = await asyncio.wait_for(add, LIMIT_S)
    assert reply["ok"], reply
    assert [(line["item_id"], line["qty"]) for line in reply["data"]["lines"]] == [(shop.cola, 3)]
    assert reply["data"]["version"] == cart["version"] + 1


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_adds_at_once_to_one_cart_both_count(shop: Shop) -> None:
    """Two cart.add of one item at once: one waits for the other's lock, so the line holds both quantities and
    the two replies carry consecutive versions."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    first = await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 1})
    adds = [
        shop.request(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": qty})
        for qty in (2, 3)
    ]
    replies = await asyncio.wait_for(asyncio.gather(*adds), LIMIT_S)
    assert all(reply["ok"] for reply in replies), replies
    versions = sorted(reply["data"]["version"] for reply in replies)
    assert versions == [first["version"] + 1, first["version"] + 2]
    newest = max((reply["data"] for reply in replies), key=lambda data: data["version"])
    assert [(line["item_id"], line["qty"]) for line in newest["lines"]] == [(shop.fries, 6)]
