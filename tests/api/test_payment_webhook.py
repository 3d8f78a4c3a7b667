"""The payment API's webhook: signatures, stale and replayed deliveries, one effect per event id, unknown payments."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from channels import names
from persistence.database import Database
from persistence.enums import OrderStatus, PaymentMethod, PaymentStatus
from persistence.tables import Order, OutboxEvent, Payment, WebhookEvent
from server.api.payment_webhook import TOLERANCE_S, sign, verify_signature
from server.app import create_app
from server.errors import ApiError
from server.services import Services
from server.settings import Settings
from tests.shop import Shop

API_KEY = "sk_test_webhooks"
URL = "/api/v1/payments/webhook"
LIMIT_S = 10
CARD_DECLINED = {"type": "card_error", "decline_code": "insufficient_funds", "message": "Insufficient funds."}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The runtime's settings with a payment API configured (never called here: only its key signs)."""
    return settings.model_copy(update={"PAYMENT_API_URL": "http://127.0.0.1:9/v1", "PAYMENT_API_KEY": API_KEY})


@dataclasses.dataclass
class Pay:
    """A gateway payment of an order awaiting payment."""

    payment_id: int
    order_id: int
    amount: int
    currency: str


async def gateway_payment(shop: Shop, provider_ref: str | None = None) -> Pay:
    """An order of the first kiosk and its gateway payment (processing when the intent id is known)."""
    order = await shop.placed_order()
    async with shop.services.db.session() as session:
        payment = Payment(
            order_id=order["id"],
            branch_id=shop.branch_id,
            method=PaymentMethod.GATEWAY,
            kiosk_id=shop.kiosk.id,
            amount=order["total"],
            currency=order["currency"],
            status=PaymentStatus.PROCESSING if provider_ref else PaymentStatus.PENDING,
            idempotency_key=str(uuid.uuid4()),
            provider_ref=provider_ref,
        )
        session.add(payment)
        await session.flush()
        return Pay(payment.id, order["id"], order["total"], order["currency"])


def intent_event(
    pay: Pay, status: str, *, kind: str | None = None, intent_id: str = "pi_1", **extra: Any
) -> dict[str, Any]:
    """A `payment_intent.*` event about `pay`'s intent, with a fresh event id."""
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": pay.amount,
        "currency": pay.currency.lower(),
        "status": status,
        "metadata": {"payment_id": str(pay.payment_id), "order_id": str(pay.order_id)},
        **extra,
    }
    event_type = kind or {"succeeded": "payment_intent.succeeded", "failed": "payment_intent.payment_failed"}.get(
        status, f"payment_intent.{status}"
    )
    return {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": event_type, "data": {"object": intent}}


async def deliver(
    client: httpx.AsyncClient, event: dict[str, Any] | bytes, *, key: str = API_KEY, at: float | None = None
) -> httpx.Response:
    """POST the event signed with `key` at `at` (default now), as the payment API does."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    header = sign(body, key, int(time.time() if at is None else at))
    headers = {"Payment-Signature": header, "Content-Type": "application/json"}
    return await asyncio.wait_for(client.post(URL, content=body, headers=headers), LIMIT_S)


async def payment_of(db: Database, payment_id: int) -> Payment:
    """The payment as stored now."""
    async with db.session() as session:
        payment = await asyncio.wait_for(session.get(Payment, payment_id), LIMIT_S)
    assert payment is not None
    return payment


async def order_status(db: Database, order_id: int) -> OrderStatus:
    """The order's status as stored now."""
    async with db.session() as session:
        order = await asyncio.wait_for(session.get(Order, order_id), LIMIT_S)
    assert order is not None
    return order.status


async def staff_payment_events(db: Database, branch_id: int) -> list[str]:
    """Payment events on the branch's staff channel, oldest first."""
    statement = (
        select(OutboxEvent.event)
        .where(OutboxEvent.channel == names.branch_orders(branch_id), OutboxEvent.event.startswith("payment."))
        .order_by(OutboxEvent.id)
    )
    async with db.session() as session:
        return list((await asyncio.wait_for(session.scalars(statement), LIMIT_S)).all())


async def seen_events(db: Database) -> int:
    """How many event ids are stored as handled."""
    async with db.session() as session:
        count = await asyncio.wait_for(session.scalar(select(func.count()).select_from(WebhookEvent)), LIMIT_S)
    return int(count or 0)


async def test_a_signed_success_approves_the_payment_and_pays_the_order(shop: Shop, client: httpx.AsyncClient) -> None:
    """`payment_intent.succeeded` approves the payment found by its metadata, keeps the intent id, pays the order."""
    pay = await gateway_payment(shop)
    response = await deliver(client, intent_event(pay, "succeeded"))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False, "payment_id": pay.payment_id}
    payment = await payment_of(shop.services.db, pay.payment_id)
    assert (payment.status, payment.provider_ref) == (PaymentStatus.APPROVED, "pi_1")
    assert await order_status(shop.services.db, pay.order_id) == OrderStatus.PAID
    assert await staff_payment_events(shop.services.db, shop.branch_id) == ["payment.approved"]


async def test_a_duplicate_delivery_has_no_second_effect(shop: Shop, client: httpx.AsyncClient) -> None:
    """The same event id again answers 200 with `duplicate: true` and changes nothing, even after a later event."""
    pay = await gateway_payment(shop, provider_ref="pi_1")
    processing = intent_event(pay, "processing")
    succeeded = intent_event(pay, "succeeded")
    assert (await deliver(client, succeeded)).json()["duplicate"] is False
    again = await deliver(client, succeeded)
    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True, "payment_id": None}
    assert (await deliver(client, processing)).status_code == 200  # late and not final: no change
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.APPROVED
    assert await staff_payment_events(shop.services.db, shop.branch_id) == ["payment.approved"]
    assert await seen_events(shop.services.db) == 2


async def test_concurrent_duplicates_apply_once(shop: Shop, client: httpx.AsyncClient) -> None:
    """Three deliveries of one event at the same moment: one applies it, the others are duplicates."""
    pay = await gateway_payment(shop, provider_ref="pi_1")
    event = intent_event(pay, "succeeded")
    responses = await asyncio.gather(*(deliver(client, event) for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True]
    assert await staff_payment_events(shop.services.db, shop.branch_id) == ["payment.approved"]


@pytest.mark.parametrize(
    "tamper",
    ["wrong key", "body changed", "no header", "no v1", "no t", "not hex"],
)
async def test_a_bad_signature_is_unauthorized_and_changes_nothing(
    shop: Shop, client: httpx.AsyncClient, tamper: str
) -> None:
    """401 for a wrong key, a body changed after signing or a malformed header; the event id is not used up."""
    pay = await gateway_payment(shop)
    event = intent_event(pay, "succeeded")
    body = json.dumps(event).encode()
    now = int(time.time())
    header = {
        "wrong key": sign(body, "sk_someone_else", now),
        "body changed": sign(body.replace(b"succeeded", b"succeedex"), API_KEY, now),
        "no v1": f"t={now}",
        "no t": sign(body, API_KEY, now).split(",", 1)[1],
        "not hex": f"t={now},v1=zz",
    }.get(tamper)
    headers = {"Content-Type": "application/json"} | ({"Payment-Signature": header} if header else {})
    response = await asyncio.wait_for(client.post(URL, content=body, headers=headers), LIMIT_S)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.PENDING
    assert await seen_events(shop.services.db) == 0
    assert (await deliver(client, event)).status_code == 200  # the genuine delivery still counts


@pytest.mark.parametrize("offset", [-TOLERANCE_S - 5, TOLERANCE_S + 5])
async def test_a_stale_or_future_timestamp_is_refused(shop: Shop, client: httpx.AsyncClient, offset: int) -> None:
    """A correctly signed delivery from more than 300 s ago (a replay) or ahead is 401."""
    pay = await gateway_payment(shop)
    response = await deliver(client, intent_event(pay, "succeeded"), at=time.time() + offset)
    assert response.status_code == 401
    assert "300 s" in response.json()["error"]["message"]
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.PENDING


def test_the_signature_check_accepts_the_edges_of_the_window_and_any_v1() -> None:
    """Exactly 300 s either way is accepted; a header with a stale v1 and the current v1 (key rollover) passes."""
    body, now = b'{"id":"evt_1"}', 1_800_000_000.0
    verify_signature(sign(body, API_KEY, int(now) - TOLERANCE_S), body, API_KEY, now)
    verify_signature(sign(body, API_KEY, int(now) + TOLERANCE_S), body, API_KEY, now)
    rolled = f"t={int(now)},v1={'0' * 64}," + sign(body, API_KEY, int(now)).split(",")[1]
    verify_signature(rolled, body, API_KEY, now)
    with pytest.raises(ApiError):
        verify_signature(sign(body, API_KEY, int(now) - TOLERANCE_S - 1), body, API_KEY, now)


async def test_an_unknown_payment_is_not_found_and_can_be_delivered_again(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    """No gateway payment for the intent: 404, not stored, so the API's redelivery applies once the payment exists."""
    pay = await gateway_payment(shop)
    stranger = dataclasses.replace(pay, payment_id=999_999)
    event = intent_event(stranger, "succeeded", intent_id="pi_stranger")
    response = await deliver(client, event)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert await seen_events(shop.services.db) == 0
    # The intent id becomes known (the worker stored it): the redelivery finds the payment by it.
    async with shop.services.db.session() as session:
        payment = await session.get(Payment, pay.payment_id)
        assert payment is not None
        payment.provider_ref, payment.status = "pi_stranger", PaymentStatus.PROCESSING
    assert (await deliver(client, event)).json()["payment_id"] == pay.payment_id
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.APPROVED


async def test_a_terminal_payment_is_not_the_webhooks_to_move(shop: Shop, client: httpx.AsyncClient) -> None:
    """An event naming a terminal payment's id is `not_found`: only gateway payments listen to the API."""
    pay = await gateway_payment(shop)
    async with shop.services.db.session() as session:
        payment = await session.get(Payment, pay.payment_id)
        assert payment is not None
        payment.method = PaymentMethod.TERMINAL
    assert (await deliver(client, intent_event(pay, "succeeded"))).status_code == 404


async def test_a_card_decline_declines_the_payment(shop: Shop, client: httpx.AsyncClient) -> None:
    """`payment_intent.payment_failed` with a card error declines it with the reason; the order awaits payment."""
    pay = await gateway_payment(shop, provider_ref="pi_1")
    event = intent_event(pay, "requires_payment_method", kind="payment_intent.payment_failed", last_error=CARD_DECLINED)
    assert (await deliver(client, event)).status_code == 200
    payment = await payment_of(shop.services.db, pay.payment_id)
    assert (payment.status, payment.message) == (PaymentStatus.DECLINED, "Insufficient funds. (insufficient_funds)")
    assert await order_status(shop.services.db, pay.order_id) == OrderStatus.AWAITING_PAYMENT


async def test_processing_moves_a_pending_payment_on(shop: Shop, client: httpx.AsyncClient) -> None:
    """`payment_intent.processing` for a payment not yet answered marks it processing with the intent id."""
    pay = await gateway_payment(shop)
    assert (await deliver(client, intent_event(pay, "processing"))).status_code == 200
    payment = await payment_of(shop.services.db, pay.payment_id)
    assert (payment.status, payment.provider_ref) == (PaymentStatus.PROCESSING, "pi_1")
    assert await staff_payment_events(shop.services.db, shop.branch_id) == ["payment.processing"]


async def test_a_late_approval_is_recorded(shop: Shop, client: httpx.AsyncClient) -> None:
    """An approval for a payment that expired still pays the order awaiting payment."""
    pay = await gateway_payment(shop, provider_ref="pi_1")
    async with shop.services.db.session() as session:
        payment = await session.get(Payment, pay.payment_id)
        assert payment is not None
        payment.status = PaymentStatus.EXPIRED
    assert (await deliver(client, intent_event(pay, "succeeded"))).status_code == 200
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.APPROVED
    assert await order_status(shop.services.db, pay.order_id) == OrderStatus.PAID


async def test_a_failure_after_the_payment_ended_changes_nothing(shop: Shop, client: httpx.AsyncClient) -> None:
    """A cancelled payment's intent failing later is acknowledged and leaves the payment as it was."""
    pay = await gateway_payment(shop, provider_ref="pi_1")
    await shop.send(shop.kiosk, "payment.cancel", {"payment_id": pay.payment_id})
    event = intent_event(pay, "canceled", cancellation_reason="abandoned")
    assert (await deliver(client, event)).status_code == 200
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.CANCELLED


async def test_an_intent_for_another_amount_is_a_conflict(shop: Shop, client: httpx.AsyncClient) -> None:
    """An intent whose amount is not the payment's is 409 and not stored, so nothing pays the order by mistake."""
    pay = await gateway_payment(shop, provider_ref="pi_1")
    event = intent_event(pay, "succeeded")
    event["data"]["object"]["amount"] = pay.amount - 1
    response = await deliver(client, event)
    assert response.status_code == 409
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.PROCESSING
    assert await seen_events(shop.services.db) == 0


async def test_other_event_types_are_acknowledged_and_ignored(shop: Shop, client: httpx.AsyncClient) -> None:
    """An event that is not about a payment intent answers 200 and changes nothing."""
    pay = await gateway_payment(shop)
    event = {"id": "evt_other", "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}}
    response = await deliver(client, event)
    assert response.status_code == 200
    assert response.json()["payment_id"] is None
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.PENDING


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"id": "evt_1", "type": "payment_intent.succeeded"}',
        b'{"id": "evt_2", "type": "payment_intent.succeeded", "data": {"object": {"status": "succeeded"}}}',
    ],
)
async def test_a_signed_body_of_the_wrong_shape_is_invalid(client: httpx.AsyncClient, shop: Shop, body: bytes) -> None:
    """Correctly signed but not JSON, without `data`, or whose object is not an intent: 422 `invalid`."""
    response = await deliver(client, body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


@pytest.fixture
async def unconfigured(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app over the same services with no PAYMENT_API_KEY."""
    bare = services.settings.model_copy(update={"PAYMENT_API_URL": None, "PAYMENT_API_KEY": None})
    app = create_app(services=dataclasses.replace(services, settings=bare))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


async def test_without_a_key_the_webhook_is_unavailable(shop: Shop, unconfigured: httpx.AsyncClient) -> None:
    """With no PAYMENT_API_KEY nothing can be verified: 503 `unavailable`, nothing changed."""
    pay = await gateway_payment(shop)
    response = await deliver(unconfigured, intent_event(pay, "succeeded"))
    assert response.status_code == 503
    assert (await payment_of(shop.services.db, pay.payment_id)).status == PaymentStatus.PENDING
