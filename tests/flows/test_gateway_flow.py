"""Payments through the payment API, end to end: a kiosk on a real socket, the server's own gateway worker,
the API on loopback, its signed webhook, the kitchen, and refunds through the API."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from channels import names
from channels.client import DeviceClient
from persistence.enums import PaymentMethod, PaymentStatus
from persistence.tables import Payment
from server.api.payment_webhook import SIGNATURE_HEADER, sign
from server.settings import Settings
from tests.integrations.fake_payment_api import API_KEY, FakePaymentApi, Reply, running_api
from tests.live import live_server
from tests.shop import Shop
from tests.world import World

PREFIX = "/api/v1"
LIMIT_S = 10


@pytest.fixture
async def api() -> AsyncIterator[FakePaymentApi]:
    """The payment API on loopback."""
    async with running_api() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, api: FakePaymentApi) -> Settings:
    """The runtime's settings with the loopback payment API configured."""
    return settings.model_copy(update={"PAYMENT_API_URL": api.url, "PAYMENT_API_KEY": API_KEY})


async def webhook(http: str, intent: dict[str, Any]) -> httpx.Response:
    """Deliver `payment_intent.<status>` for `intent`, signed as the payment API signs it."""
    body = json.dumps(
        {"id": f"evt_{uuid.uuid4().hex}", "type": f"payment_intent.{intent['status']}", "data": {"object": intent}}
    ).encode()
    headers = {SIGNATURE_HEADER: sign(body, API_KEY, int(time.time())), "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=http) as client:
        return await client.post(f"{PREFIX}/payments/webhook", content=body, headers=headers)


async def created_intent(api: FakePaymentApi) -> dict[str, Any]:
    """The intent the server's gateway worker creates (it runs every second)."""
    while not api.intents:  # noqa: ASYNC110 (the fake API records intents in a plain dict)
        await asyncio.sleep(0.05)
    [intent] = api.intents.values()
    return intent


async def paid_gateway_order(shop: Shop, api: FakePaymentApi, http: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order paid through the API (created by the worker, approved by webhook); the order and its intent."""
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    intent = await created_intent(api)
    assert intent["metadata"]["payment_id"] == str(payment["id"])
    assert (await webhook(http, api.settle(intent["id"], "succeeded"))).status_code == 200
    return order, intent


async def test_a_kiosk_pays_through_the_api_and_the_kitchen_gets_the_order(shop: Shop, api: FakePaymentApi) -> None:
    """payment.start with no terminal at all; the worker creates the intent; its webhook pays the order."""
    async with live_server(shop.services) as live, asyncio.timeout(30):
        async with (
            DeviceClient(live.ws, shop.kiosk.token) as kiosk,
            DeviceClient(live.ws, shop.kitchen.token) as kitchen,
        ):
            cart = await kiosk.command("cart.create")
            await kiosk.command("cart.add", {"cart_id": cart["id"], "item_id": shop.fries, "qty": 2})
            order = await kiosk.command("order.place", {"cart_id": cart["id"]})
            payment = await kiosk.command("payment.start", {"order_id": order["id"]})
            assert (payment["method"], payment["status"], payment["terminal_id"]) == ("gateway", "pending", None)
            again = await kiosk.command("payment.start", {"order_id": order["id"]})
            assert again["id"] == payment["id"]  # a double tap: one payment

            processing = await kiosk.next_event(names.device(shop.kiosk.id), "payment.processing")
            intent = await created_intent(api)
            assert processing["data"]["provider_ref"] == intent["id"]
            [create] = api.posts()
            assert (create.body["amount"], create.headers["idempotency-key"]) == (700, await key_of(shop, payment))

            response = await webhook(live.http, api.settle(intent["id"], "succeeded"))
            assert (response.status_code, response.json()["payment_id"]) == (200, payment["id"])
            await kiosk.next_event(names.device(shop.kiosk.id), "payment.approved")
            paid = await kiosk.next_event(names.device(shop.kiosk.id), "order.paid")
            assert paid["data"]["id"] == order["id"]
            queued = await kitchen.next_event(names.branch_kitchen(shop.branch_id), "order.queued")
            assert queued["data"]["id"] == order["id"]
    assert len(api.posts()) == 1  # one charge, however often the worker ran


async def key_of(shop: Shop, payment: dict[str, Any]) -> str:
    """The payment's idempotency key as stored."""
    async with shop.services.db.session() as session:
        row = await session.get(Payment, payment["id"])
    assert row is not None and row.method == PaymentMethod.GATEWAY
    return row.idempotency_key


async def test_a_refund_goes_through_the_api_once(shop: Shop, world: World, api: FakePaymentApi) -> None:
    """A manager's refund posts one refund with the payment's refund key; the order and payment are refunded."""
    async with live_server(shop.services) as live, asyncio.timeout(30):
        order, intent = await paid_gateway_order(shop, api, live.http)
        async with httpx.AsyncClient(base_url=live.http, headers=world.manager_a.headers) as client:
            response = await client.post(f"{PREFIX}/orders/{order['id']}/refund")
            assert response.status_code == 200, response.text
            body = response.json()
    assert body["status"] == "refunded"
    assert [p["status"] for p in body["payments"]] == ["refunded"]
    [refund] = api.posts("/v1/refunds")
    key = await key_of(shop, body["payments"][0])
    assert refund.body == {"payment_intent": intent["id"], "amount": order["total"]}
    assert refund.headers["idempotency-key"] == f"{key}:refund"


@pytest.mark.parametrize(
    ("replies", "status", "code"),
    [
        ([Reply(500)] * 3, 503, "unavailable"),  # no answer after every try: safe to try again
        ([Reply(400, {"error": {"type": "invalid_request_error", "message": "charge disputed"}})], 409, "conflict"),
    ],
)
async def test_a_refund_the_api_does_not_make_changes_nothing(
    shop: Shop, world: World, api: FakePaymentApi, replies: list[Reply], status: int, code: str
) -> None:
    """An API that fails or refuses the refund: a clear error, and the order and its payment stay as they were."""
    async with live_server(shop.services) as live, asyncio.timeout(30):
        order, _ = await paid_gateway_order(shop, api, live.http)
        api.will(*replies)
        async with httpx.AsyncClient(base_url=live.http, headers=world.manager_a.headers) as client:
            response = await client.post(f"{PREFIX}/orders/{order['id']}/refund")
            assert (response.status_code, response.json()["error"]["code"]) == (status, code)
            detail = (await client.get(f"{PREFIX}/orders/{order['id']}")).json()
    assert detail["status"] == "paid"
    assert [p["status"] for p in detail["payments"]] == [PaymentStatus.APPROVED.value]
