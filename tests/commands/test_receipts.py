"""`order.receipt`: the kiosk that placed a paid order reads its receipt (server/commands/receipts.py).

The branch taxes food at 19 % eaten in and 7 % taken away, and drinks at 19 %, as in
tests/commands/test_service_modes.py; the burger is food, the cola a drink.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from persistence.base import rfc3339, utcnow
from persistence.tables import Branch, Item, Order, TaxCategory
from server.payloads.receipt import ReceiptView
from tests.shop import Shop
from tests.world import World

ADDRESS = "Hauptstraße 1, 10115 Berlin"
PREFIX = "/api/v1"


@pytest.fixture
async def taxed(shop: Shop) -> Shop:
    """The shop with an address, the burger as food, the cola as a drink, and German rates; default rate 0."""
    async with shop.services.db.session() as session:
        food, drinks = TaxCategory(name="food"), TaxCategory(name="drinks")
        session.add_all([food, drinks])
        await session.flush()
        rates = [
            {"tax_category_id": food.id, "service_mode": "eat_in", "rate_bp": 1900},
            {"tax_category_id": food.id, "service_mode": "takeaway", "rate_bp": 700},
            {"tax_category_id": drinks.id, "service_mode": "eat_in", "rate_bp": 1900},
            {"tax_category_id": drinks.id, "service_mode": "takeaway", "rate_bp": 1900},
        ]
        await session.execute(
            update(Branch).where(Branch.id == shop.branch_id).values(tax_rates=rates, tax_rate_bp=0, address=ADDRESS)
        )
        await session.execute(update(Item).where(Item.id == shop.burger).values(tax_category_id=food.id))
        await session.execute(update(Item).where(Item.id == shop.cola).values(tax_category_id=drinks.id))
    return shop


async def takeaway_order(shop: Shop) -> dict[str, Any]:
    """Two large burgers with bacon and a cola, to take away, placed by the first kiosk and awaiting payment."""
    cart = await shop.send(shop.kiosk, "cart.create", {"service_mode": "takeaway"})
    options = [shop.choices["Large"], shop.choices["Bacon"]]
    await shop.send(
        shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.burger, "qty": 2, "options": options}
    )
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    return await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})


def fits(data: dict[str, Any]) -> None:
    """Fail unless the reply data, as JSON reaches the kiosk, is exactly a receipt: every field, no other."""
    ReceiptView.model_validate_json(json.dumps(data), strict=True)


async def test_a_paid_takeaway_orders_receipt_lists_its_lines_taxes_per_rate_and_payment(taxed: Shop) -> None:
    """Lines with options and rates, 7 % and 19 % each with its net and tax, totals adding up, the terminal's reference,
    the branch's details, the order's number and business day."""
    shop = taxed
    order = await takeaway_order(shop)
    payment = await shop.pay_at_terminal(order, "ACQ-4711")
    data = await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]})
    fits(data)

    assert (data["order_id"], data["number"], data["business_date"]) == (
        order["id"],
        order["number"],
        order["business_date"],
    )
    assert (data["service_mode"], data["status"], data["currency"]) == ("takeaway", "paid", "EUR")
    assert data["branch"] == {
        "id": shop.branch_id,
        "name": "Alpha",
        "address": ADDRESS,
        "currency": "EUR",
        "timezone": "Europe/Berlin",
    }
    burger, cola = data["lines"]
    assert (burger["name"], burger["qty"], burger["unit_price"], burger["line_total"], burger["tax_rate_bp"]) == (
        "Burger",
        2,
        1250,
        2500,
        700,
    )
    assert [(o["group"], o["name"], o["price_delta"]) for o in burger["options"]] == [
        ("Size", "Large", 150),
        ("Extras", "Bacon", 200),
    ]
    assert (cola["name"], cola["qty"], cola["line_total"], cola["tax_rate_bp"], cola["options"]) == (
        "Cola",
        1,
        300,
        1900,
        [],
    )
    # 2500 at 7 % holds 163.55 -> 164; 300 at 19 % holds 47.90 -> 48.
    assert data["taxes"] == [
        {"rate_bp": 700, "net": 2336, "tax": 164, "total": 2500},
        {"rate_bp": 1900, "net": 252, "tax": 48, "total": 300},
    ]
    assert (data["subtotal"], data["tax"], data["total"]) == (2588, 212, 2800)
    assert data["payment"] == {
        "method": "terminal",
        "amount": 2800,
        "provider_ref": "ACQ-4711",
        "approved_at": payment["approved_at"],
    }
    assert data["paid_at"] == await paid_at(shop, order["id"])
    assert data["refunded_at"] is None


async def paid_at(shop: Shop, order_id: int) -> str:
    """When the order was paid, as stored, spelt as payloads spell moments."""
    async with shop.services.db.session() as session:
        order = await session.get(Order, order_id)
    assert order is not None and order.paid_at is not None
    return rfc3339(order.paid_at)


async def test_a_refunded_orders_receipt_says_when_and_keeps_the_payment(
    taxed: Shop, world: World, client: httpx.AsyncClient
) -> None:
    """After a manager's refund the receipt shows `refunded` and `refunded_at`; the payment is still the one that
    paid, with its reference, and the rest of the receipt is unchanged."""
    shop = taxed
    order = await takeaway_order(shop)
    await shop.pay_at_terminal(order, "ACQ-1")
    before = await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]})
    refunded = await client.post(f"{PREFIX}/orders/{order['id']}/refund", headers=world.manager_a.headers)
    assert refunded.status_code == 200, refunded.text

    after = await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]})
    fits(after)
    assert after["status"] == "refunded"
    assert after["refunded_at"] == refunded.json()["refunded_at"] is not None
    assert after["payment"] == before["payment"] and after["payment"]["provider_ref"] == "ACQ-1"
    unchanged = {key: value for key, value in after.items() if key not in ("status", "refunded_at")}
    assert unchanged == {key: value for key, value in before.items() if key not in ("status", "refunded_at")}


async def test_the_receipts_payment_is_the_one_that_paid_not_a_late_approval_given_back(
    shop: Shop, world: World, client: httpx.AsyncClient
) -> None:
    """A terminal approval that came after the order was paid in cash is `needs_refund`: the receipt names the cash
    payment, before and after either payment is refunded."""
    await shop.terminal_online()
    order = await shop.placed_order()
    late = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    await shop.services.deadlines.run_once(utcnow() + timedelta(seconds=shop.services.settings.PAYMENT_TIMEOUT_S + 1))
    await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    result = {"payment_id": late["id"], "status": "approved", "provider_ref": "LATE-1"}
    assert (await shop.send(shop.terminal, "payment.result", result))["status"] == "needs_refund"

    async def payment() -> dict[str, Any]:
        receipt = await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]})
        paid: dict[str, Any] = receipt["payment"]
        return paid

    assert (await payment())["method"] == "cash"
    for path in (f"payments/{late['id']}/refund", f"orders/{order['id']}/refund"):
        response = await client.post(f"{PREFIX}/{path}", headers=world.manager_a.headers)
        assert response.status_code == 200, response.text
        paid = await payment()
        assert (paid["method"], paid["provider_ref"]) == ("cash", None)


async def test_an_order_not_paid_has_no_receipt_and_a_retry_reads_afresh(shop: Shop) -> None:
    """Awaiting payment, and cancelled unpaid, the receipt is `conflict` naming the status. A read is not kept in the
    command log: the same command id sent again once the order is paid gets the receipt."""
    unpaid = await shop.placed_order()
    refused = await shop.request(shop.kiosk, "order.receipt", {"order_id": unpaid["id"]}, command_id="r1")
    assert refused["ok"] is False
    assert (refused["error"]["code"], refused["error"]["details"]) == (
        "conflict",
        {"order_id": unpaid["id"], "status": "awaiting_payment"},
    )
    await shop.send(shop.staff, "order.mark_paid", {"order_id": unpaid["id"]})
    again = await shop.request(shop.kiosk, "order.receipt", {"order_id": unpaid["id"]}, command_id="r1")
    assert again["ok"] is True and again["data"]["payment"]["amount"] == unpaid["total"]

    cancelled = await shop.placed_order()
    await shop.send(shop.kiosk, "order.cancel", {"order_id": cancelled["id"]})
    error = await shop.error(shop.kiosk, "order.receipt", {"order_id": cancelled["id"]})
    assert (error["code"], error["details"]["status"]) == ("conflict", "cancelled")


async def test_another_kiosks_order_is_not_found_and_only_kiosks_ask(shop: Shop) -> None:
    """The second kiosk cannot read the first's receipt (as for an order that does not exist); other devices and
    staff may not send the command."""
    order = await shop.paid_order()
    for order_id in (order["id"], order["id"] + 1000):
        error = await shop.error(shop.kiosk2, "order.receipt", {"order_id": order_id})
        assert (error["code"], error["details"]) == ("not_found", {"order_id": order_id})
    for sender in (shop.kitchen, shop.terminal, shop.staff):
        assert (await shop.error(sender, "order.receipt", {"order_id": order["id"]}))["code"] == "forbidden"
    assert (await shop.send(shop.kiosk, "order.receipt", {"order_id": order["id"]}))["order_id"] == order["id"]
