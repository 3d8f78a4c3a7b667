"""The gateway worker against the payment API on loopback: creates, status queries, late results, claims."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from channels import names
from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import OrderStatus, PaymentMethod, PaymentStatus
from persistence.tables import Order, OutboxEvent, Payment
from server.integrations.payment_gateway import PaymentGateway
from server.services import Services
from server.settings import Settings
from server.workers.gateway import RETRY_S, STATUS_AFTER_S, GatewayWorker
from tests.integrations.fake_payment_api import (
    API_KEY,
    CARD_DECLINED,
    HOLD,
    LIMIT_S,
    SLOW,
    TIMEOUT_S,
    FakePaymentApi,
    Reply,
    running_api,
    within,
)
from tests.shop import Shop

Make = Callable[..., GatewayWorker]


@pytest.fixture
async def api() -> AsyncIterator[FakePaymentApi]:
    """The payment API on loopback."""
    async with running_api() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, api: FakePaymentApi) -> Settings:
    """The runtime's settings with the loopback payment API configured."""
    return settings.model_copy(update={"PAYMENT_API_URL": api.url, "PAYMENT_API_KEY": API_KEY})


@pytest.fixture
async def make_worker(services: Services) -> AsyncIterator[Make]:
    """Builds workers over the test services with a short timeout and tiny backoff; closes them after the test."""
    made: list[GatewayWorker] = []

    def make(timeout_s: float = TIMEOUT_S, **options: Any) -> GatewayWorker:
        url = services.settings.PAYMENT_API_URL
        assert url is not None
        gateway = PaymentGateway(url, API_KEY, timeout_s=timeout_s, base_delay_s=0.01)
        made.append(GatewayWorker(services.db, services.relay, services.settings, gateway, **options))
        return made[-1]

    yield make
    for worker in made:
        await within(worker.close())


async def gateway_payment(shop: Shop) -> tuple[dict[str, Any], int]:
    """An order of the first kiosk awaiting payment and its pending gateway payment, as `payment.start` leaves them."""
    order = await shop.placed_order()
    async with shop.services.db.session() as session:
        payment = Payment(
            order_id=order["id"],
            branch_id=shop.branch_id,
            method=PaymentMethod.GATEWAY,
            kiosk_id=shop.kiosk.id,
            amount=order["total"],
            currency=order["currency"],
            status=PaymentStatus.PENDING,
            idempotency_key=str(uuid.uuid4()),
        )
        session.add(payment)
        await session.flush()
        return order, payment.id


async def payment_of(db: Database, payment_id: int) -> Payment:
    """The payment as stored now."""
    async with db.session() as session:
        payment = await within(session.get(Payment, payment_id))
    assert payment is not None
    return payment


async def order_status(db: Database, order_id: int) -> OrderStatus:
    """The order's status as stored now."""
    async with db.session() as session:
        order = await within(session.get(Order, order_id))
    assert order is not None
    return order.status


async def payment_events(services: Services, branch_id: int) -> list[tuple[str, bool]]:
    """Payment events on the branch's staff channel, oldest first, and whether each was published."""
    await services.relay.marked()
    async with services.db.session() as session:
        rows = (
            await within(
                session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.channel == names.branch_orders(branch_id))
                    .where(OutboxEvent.event.startswith("payment."))
                    .order_by(OutboxEvent.id)
                )
            )
        ).all()
    return [(row.event, row.published_at is not None) for row in rows]


async def set_status(db: Database, payment_id: int, status: PaymentStatus, at: datetime) -> None:
    """End a payment as the deadline worker or a kiosk cancel would."""
    async with db.session() as session:
        payment = await within(session.get(Payment, payment_id))
        assert payment is not None
        payment.status, payment.finished_at = status, at


async def test_a_pending_payment_is_created_at_the_api_and_becomes_processing(
    shop: Shop, api: FakePaymentApi, make_worker: Make
) -> None:
    """One POST with the payment's key, amount, currency and ids; the intent id is kept; staff hear processing."""
    order, payment_id = await gateway_payment(shop)
    stored = await payment_of(shop.services.db, payment_id)
    worker = make_worker()
    now = utcnow()
    assert await within(worker.run_once(now)) == 1
    [create] = api.received
    assert create.headers["idempotency-key"] == stored.idempotency_key
    assert create.headers["authorization"] == f"Bearer {API_KEY}"
    assert create.body == {
        "amount": order["total"],
        "currency": order["currency"].lower(),
        "metadata": {"payment_id": str(payment_id), "order_id": str(order["id"])},
    }
    payment = await payment_of(shop.services.db, payment_id)
    assert (payment.status, payment.provider_ref, payment.message) == (PaymentStatus.PROCESSING, "pi_1", None)
    assert await payment_events(shop.services, shop.branch_id) == [("payment.processing", True)]
    # Nothing is due again right away: no second create.
    assert await within(worker.run_once(now + timedelta(seconds=1))) == 0
    assert len(api.received) == 1


async def test_an_intent_that_succeeds_at_once_pays_the_order(
    shop: Shop, api: FakePaymentApi, make_worker: Make
) -> None:
    """An intent answered `succeeded` approves the payment and pays the order in the recording transaction."""
    api.outcome = "succeeded"
    order, payment_id = await gateway_payment(shop)
    await within(make_worker().run_once())
    payment = await payment_of(shop.services.db, payment_id)
    assert (payment.status, payment.provider_ref) == (PaymentStatus.APPROVED, "pi_1")
    assert payment.approved_at is not None
    assert await order_status(shop.services.db, order["id"]) == OrderStatus.PAID
    assert await payment_events(shop.services, shop.branch_id) == [("payment.approved", True)]


async def test_a_declined_card_declines_the_payment(shop: Shop, api: FakePaymentApi, make_worker: Make) -> None:
    """An intent failed with a card error declines the payment with the reason; the order still awaits payment."""
    api.outcome, api.last_error = "failed", CARD_DECLINED
    order, payment_id = await gateway_payment(shop)
    await within(make_worker().run_once())
    payment = await payment_of(shop.services.db, payment_id)
    assert payment.status == PaymentStatus.DECLINED
    assert payment.message == "Your card has insufficient funds. (insufficient_funds)"
    assert await order_status(shop.services.db, order["id"]) == OrderStatus.AWAITING_PAYMENT


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(400, {"error": {"type": "invalid_request_error", "message": "amount too small"}}), PaymentStatus.FAILED),
        (Reply(402, {"error": CARD_DECLINED}), PaymentStatus.DECLINED),
    ],
)
async def test_a_refusal_ends_the_payment_without_retrying(
    shop: Shop, api: FakePaymentApi, make_worker: Make, reply: Reply, status: PaymentStatus
) -> None:
    """A 4xx create is final after one try: 402 declines, anything else fails; nothing is sent again."""
    api.will(reply)
    _, payment_id = await gateway_payment(shop)
    worker = make_worker()
    now = utcnow()
    await within(worker.run_once(now))
    payment = await payment_of(shop.services.db, payment_id)
    assert payment.status == status
    assert (payment.message or "").startswith(f"refused by the payment API: HTTP {reply.status}")
    assert await within(worker.run_once(now + timedelta(hours=1))) == 0
    assert len(api.received) == 1


async def test_server_errors_are_retried_within_the_round(shop: Shop, api: FakePaymentApi, make_worker: Make) -> None:
    """A 500 and a 503 are retried by the client with the same key; the third try's intent is kept."""
    api.will(Reply(500), Reply(503))
    _, payment_id = await gateway_payment(shop)
    await within(make_worker().run_once())
    payment = await payment_of(shop.services.db, payment_id)
    assert (payment.status, payment.provider_ref) == (PaymentStatus.PROCESSING, "pi_1")
    assert len({r.headers["idempotency-key"] for r in api.posts()}) == 1 and len(api.posts()) == 3


async def test_after_timeouts_the_status_query_finds_the_intent(
    shop: Shop, api: FakePaymentApi, make_worker: Make
) -> None:
    """Every create try times out (the API did act): a GET by idempotency key finds the intent; no second charge."""
    api.will(SLOW, SLOW, SLOW)
    _, payment_id = await gateway_payment(shop)
    stored = await payment_of(shop.services.db, payment_id)
    await within(make_worker().run_once())
    assert len(api.posts()) == 3
    lookup = api.received[-1]
    assert (lookup.method, lookup.query) == ("GET", {"idempotency_key": stored.idempotency_key})
    payment = await payment_of(shop.services.db, payment_id)
    assert (payment.status, payment.provider_ref) == (PaymentStatus.PROCESSING, "pi_1")
    assert list(api.intents) == ["pi_1"]


async def test_a_create_the_api_never_saw_is_sent_again_later(
    shop: Shop, api: FakePaymentApi, make_worker: Make
) -> None:
    """5xx on every try and no intent under the key: the payment stays pending with a note, and is sent again
    (same key) after RETRY_S, not before."""
    api.will(Reply(503), Reply(503), Reply(503))
    _, payment_id = await gateway_payment(shop)
    worker = make_worker()
    now = utcnow()
    await within(worker.run_once(now))
    payment = await payment_of(shop.services.db, payment_id)
    assert (payment.status, payment.provider_ref) == (PaymentStatus.PENDING, None)
    assert payment.message is not None and payment.message.startswith("payment API unreachable, trying again")
    assert await within(worker.run_once(now + timedelta(seconds=RETRY_S - 1))) == 0
    assert await within(worker.run_once(now + timedelta(seconds=RETRY_S))) == 1
    payment = await payment_of(shop.services.db, payment_id)
    assert (payment.status, payment.provider_ref, payment.message) == (PaymentStatus.PROCESSING, "pi_1", None)
    assert len({r.headers["idempotency-key"] for r in api.posts()}) == 1 and len(api.posts()) == 4


async def test_a_busy_api_is_asked_again_later(shop: Shop, api: FakePaymentApi, make_worker: Make) -> None:
    """409 (the key still in progress) keeps the payment pending, and the create is sent again after RETRY_S."""
    api.will(Reply(409, {"error": {"type": "idempotency_error", "message": "in progress"}}))
    _, payment_id = await gateway_payment(shop)
    worker = make_worker()
    now = utcnow()
    await within(worker.run_once(now))
    payment = await payment_of(shop.services.db, payment_id)
    assert payment.status == PaymentStatus.PENDING
    assert payment.message is not None and payment.message.startswith("payment API busy")
    await within(worker.run_once(now + timedelta(seconds=RETRY_S)))
    assert (await payment_of(shop.services.db, payment_id)).status == PaymentStatus.PROCESSING


async def test_a_quiet_processing_payment_is_looked_up(shop: Shop, api: FakePaymentApi, make_worker: Make) -> None:
    """No webhook: after STATUS_AFTER_S the intent is read by id, again each interval, and its result recorded."""
    order, payment_id = await gateway_payment(shop)
    worker = make_worker()
    now = utcnow()
    await within(worker.run_once(now))
    assert await within(worker.run_once(now + timedelta(seconds=STATUS_AFTER_S - 5))) == 0
    later = now + timedelta(seconds=STATUS_AFTER_S + 1)
    assert await within(worker.run_once(later)) == 1  # still processing at the API
    assert api.received[-1].path == "/v1/payment_intents/pi_1"
    assert (await payment_of(shop.services.db, payment_id)).status == PaymentStatus.PROCESSING
    assert await within(worker.run_once(later + timedelta(seconds=1))) == 0
    api.settle("pi_1", "succeeded")
    assert await within(worker.run_once(later + timedelta(seconds=STATUS_AFTER_S))) == 1
    assert (await payment_of(shop.services.db, payment_id)).status == PaymentStatus.APPROVED
    assert await order_status(shop.services.db, order["id"]) == OrderStatus.PAID
    assert len(api.posts()) == 1


async def test_an_intent_for_another_amount_is_not_applied(shop: Shop, api: FakePaymentApi, make_worker: Make) -> None:
    """A status answer whose amount differs from the payment's changes nothing (logged as a conflict)."""
    order, payment_id = await gateway_payment(shop)
    worker = make_worker()
    now = utcnow()
    await within(worker.run_once(now))
    api.settle("pi_1", "succeeded")["amount"] = 1
    await within(worker.run_once(now + timedelta(seconds=STATUS_AFTER_S + 1)))
    assert (await payment_of(shop.services.db, payment_id)).status == PaymentStatus.PROCESSING
    assert await order_status(shop.services.db, order["id"]) == OrderStatus.AWAITING_PAYMENT


async def test_an_approval_after_the_payment_expired_is_recorded(
    shop: Shop, api: FakePaymentApi, make_worker: Make
) -> None:
    """An expired gateway payment is looked up for a while; the API's late approval pays the order."""
    order, payment_id = await gateway_payment(shop)
    worker = make_worker()
    now = utcnow()
    await within(worker.run_once(now))
    await set_status(shop.services.db, payment_id, PaymentStatus.EXPIRED, now)
    api.settle("pi_1", "succeeded")
    late = now + timedelta(minutes=3)
    assert await within(worker.run_once(late)) == 1
    payment = await payment_of(shop.services.db, payment_id)
    assert (payment.status, payment.provider_ref) == (PaymentStatus.APPROVED, "pi_1")
    assert await order_status(shop.services.db, order["id"]) == OrderStatus.PAID


async def test_a_payment_that_ended_before_it_was_sent_is_never_sent(
    shop: Shop, api: FakePaymentApi, make_worker: Make
) -> None:
    """A payment cancelled while still pending is neither created nor looked up."""
    _, payment_id = await gateway_payment(shop)
    await within(shop.send(shop.kiosk, "payment.cancel", {"payment_id": payment_id}))
    worker = make_worker()
    now = utcnow()
    assert await within(worker.run_once(now)) == 0
    assert await within(worker.run_once(now + timedelta(minutes=5))) == 0
    assert api.received == []


async def test_no_row_is_locked_while_the_api_is_asked(shop: Shop, api: FakePaymentApi, make_worker: Make) -> None:
    """The kiosk cancels the payment while its create is in flight; the intent id is still kept, and the API's
    later approval is recorded as a late one."""
    api.will(HOLD)
    order, payment_id = await gateway_payment(shop)
    worker = make_worker(timeout_s=LIMIT_S)
    now = utcnow()
    round_ = asyncio.get_running_loop().create_task(worker.run_once(now))
    try:
        async with asyncio.timeout(5):
            while not api.received:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # Would wait for the worker's lock (PostgreSQL) or write transaction (SQLite) if it held one.
        cancelled = await within(shop.send(shop.kiosk, "payment.cancel", {"payment_id": payment_id}), 3)
        assert cancelled["status"] == "cancelled"
    finally:
        api.release()
        await within(round_)
    payment = await payment_of(shop.services.db, payment_id)
    assert (payment.status, payment.provider_ref) == (PaymentStatus.CANCELLED, "pi_1")
    api.settle("pi_1", "succeeded")
    await within(worker.run_once(now + timedelta(minutes=3)))
    assert (await payment_of(shop.services.db, payment_id)).status == PaymentStatus.APPROVED
    assert await order_status(shop.services.db, order["id"]) == OrderStatus.PAID


async def test_two_workers_create_a_payment_once(shop: Shop, api: FakePaymentApi, make_worker: Make) -> None:
    """Two instances running a round together: one claims the payment, one POST goes out."""
    _, payment_id = await gateway_payment(shop)
    now = utcnow()
    asked = await within(asyncio.gather(make_worker().run_once(now), make_worker().run_once(now)))
    assert sorted(asked) == [0, 1]
    assert len(api.posts()) == 1
    assert (await payment_of(shop.services.db, payment_id)).status == PaymentStatus.PROCESSING


async def test_the_loop_starts_and_stops(shop: Shop, api: FakePaymentApi, make_worker: Make) -> None:
    """start() sends a pending payment within a second or two; close() stops the loop."""
    _, payment_id = await gateway_payment(shop)
    worker = make_worker()
    worker.start()
    try:
        async with asyncio.timeout(LIMIT_S):
            while (await payment_of(shop.services.db, payment_id)).status != PaymentStatus.PROCESSING:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await within(worker.close())
