"""The POS push against a real HTTP server on loopback: delivery, retries with backoff, refusals, the budget, leases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from persistence import pos_deliveries
from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import DeliveryStatus
from persistence.tables import Order, PosDelivery
from server.integrations.pos import MAX_DELAY_S, backoff_s
from server.payloads.order import order_data
from server.services import Services
from server.settings import Settings
from server.workers.pos import BATCH, LEASE, PosWorker
from tests.integrations.fake_pos import DROP, SLOW, FakePos, Reply, running_pos
from tests.shop import Shop

API_KEY = "pos-test-key"
LIMIT_S = 10
TIMEOUT_S = 1.0  # the client's timeout in these tests; SLOW answers after 3 s

T = TypeVar("T")


async def within(awaitable: Awaitable[T]) -> T:
    """Await with the tests' time limit."""
    return await asyncio.wait_for(awaitable, LIMIT_S)


@pytest.fixture
async def pos() -> AsyncIterator[FakePos]:
    """The POS on loopback; answers 200 unless a test scripts otherwise."""
    async with running_pos() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, pos: FakePos) -> Settings:
    """The runtime's settings with the loopback POS configured, so paying an order queues its delivery."""
    return settings.model_copy(update={"POS_API_URL": pos.url, "POS_API_KEY": API_KEY})


def worker(services: Services, **options: Any) -> PosWorker:
    """A worker with a short timeout and the longest backoff step (jitter factor 1), so schedules are exact."""
    options.setdefault("timeout_s", TIMEOUT_S)
    options.setdefault("rng", lambda: 1.0)
    return PosWorker(services.db, services.settings, **options)


async def delivery_of(db: Database, order_id: int) -> PosDelivery:
    """The delivery row of an order."""
    async with db.session() as session:
        row = await session.scalar(select(PosDelivery).where(PosDelivery.order_id == order_id))
    assert row is not None
    return row


async def paid(shop: Shop) -> tuple[int, PosDelivery]:
    """A paid order's id and its queued delivery."""
    order = await shop.paid_order()
    return order["id"], await within(delivery_of(shop.services.db, order["id"]))


def seconds(later: datetime, earlier: datetime) -> float:
    """`later - earlier` in seconds."""
    return (later - earlier).total_seconds()


async def test_a_paid_order_is_posted_with_its_key_and_the_api_key(shop: Shop, pos: FakePos) -> None:
    """One POST carries the bearer key, the Idempotency-Key header and the order as devices see it; 2xx is delivered."""
    order_id, queued = await paid(shop)
    assert (queued.status, queued.attempts) == (DeliveryStatus.PENDING, 0)
    push = worker(shop.services)
    now = utcnow()
    assert await within(push.run_once(now)) == 1
    await within(push.close())
    [request] = pos.received
    assert (request.method, request.path) == ("POST", "/orders")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["idempotency-key"] == queued.idempotency_key
    assert request.headers["content-type"] == "application/json"
    async with shop.services.db.session() as session:
        order = await within(session.get(Order, order_id))
        assert order is not None
        expected = order_data(order)
    assert request.body == {"idempotency_key": queued.idempotency_key, "order": expected}
    assert request.body["order"]["status"] == "paid"
    done = await within(delivery_of(shop.services.db, order_id))
    assert (done.status, done.attempts, done.delivered_at, done.last_error) == (DeliveryStatus.DELIVERED, 1, now, None)
    assert await within(push.run_once(now + timedelta(hours=1))) == 0
    assert len(pos.received) == 1


async def test_failures_are_retried_with_backoff_and_the_same_key_until_delivered(shop: Shop, pos: FakePos) -> None:
    """500, a dropped connection and a timeout are each retried after 2, 4, 8 s; every attempt sends the same key."""
    order_id, queued = await paid(shop)
    pos.will(Reply(500, "database on fire"), DROP, SLOW)
    push = worker(shop.services)
    t0 = utcnow()
    try:
        assert await within(push.run_once(t0)) == 1
        first = await within(delivery_of(shop.services.db, order_id))
        assert (first.status, first.attempts, first.last_error) == (
            DeliveryStatus.PENDING,
            1,
            "HTTP 500: database on fire",
        )
        assert seconds(first.next_attempt_at, t0) == 2
        # Not due yet: nothing is sent.
        assert await within(push.run_once(t0 + timedelta(seconds=1.9))) == 0
        t1 = t0 + timedelta(seconds=2)
        assert await within(push.run_once(t1)) == 1
        second = await within(delivery_of(shop.services.db, order_id))
        assert second.attempts == 2 and second.last_error is not None
        assert "RemoteProtocolError" in second.last_error
        assert seconds(second.next_attempt_at, t1) == 4
        t2 = t1 + timedelta(seconds=4)
        assert await within(push.run_once(t2)) == 1
        third = await within(delivery_of(shop.services.db, order_id))
        assert (third.attempts, third.last_error) == (3, f"no answer within {TIMEOUT_S:g} s")
        assert seconds(third.next_attempt_at, t2) == 8
        t3 = t2 + timedelta(seconds=8)
        assert await within(push.run_once(t3)) == 1
    finally:
        await within(push.close())
    done = await within(delivery_of(shop.services.db, order_id))
    assert (done.status, done.attempts, done.delivered_at) == (DeliveryStatus.DELIVERED, 4, t3)
    assert done.last_error == f"no answer within {TIMEOUT_S:g} s"  # kept: how it went before it worked
    assert [r.headers["idempotency-key"] for r in pos.received] == [queued.idempotency_key] * 4
    assert {r.body["idempotency_key"] for r in pos.received} == {queued.idempotency_key}


async def test_a_refusal_fails_at_once_and_keeps_the_answer(shop: Shop, pos: FakePos) -> None:
    """A 4xx other than 408 and 429 is permanent: failed after one attempt, never sent again by itself."""
    order_id, _ = await paid(shop)
    pos.will(Reply(400, "unknown item 17"))
    push = worker(shop.services)
    now = utcnow()
    assert await within(push.run_once(now)) == 1
    failed = await within(delivery_of(shop.services.db, order_id))
    assert (failed.status, failed.attempts, failed.last_error) == (
        DeliveryStatus.FAILED,
        1,
        "HTTP 400: unknown item 17",
    )
    assert await within(push.run_once(now + timedelta(days=1))) == 0
    await within(push.close())
    assert len(pos.received) == 1


async def test_408_and_429_are_retried_and_retry_after_is_honoured(shop: Shop, pos: FakePos) -> None:
    """408 and 429 mean "later": retried; a Retry-After longer than the backoff step wins, up to the cap."""
    order_id, _ = await paid(shop)
    pos.will(Reply(429, headers={"Retry-After": "120"}), Reply(408), Reply(201))
    push = worker(shop.services)
    t0 = utcnow()
    assert await within(push.run_once(t0)) == 1
    first = await within(delivery_of(shop.services.db, order_id))
    assert (first.status, first.last_error) == (DeliveryStatus.PENDING, "HTTP 429")
    assert seconds(first.next_attempt_at, t0) == 120
    t1 = first.next_attempt_at
    assert await within(push.run_once(t1)) == 1
    second = await within(delivery_of(shop.services.db, order_id))
    assert (second.status, second.last_error, seconds(second.next_attempt_at, t1)) == (
        DeliveryStatus.PENDING,
        "HTTP 408",
        4,
    )
    assert await within(push.run_once(second.next_attempt_at)) == 1
    await within(push.close())
    assert (await within(delivery_of(shop.services.db, order_id))).status == DeliveryStatus.DELIVERED


async def test_the_budget_spent_means_failed(shop: Shop, pos: FakePos) -> None:
    """When every attempt of the budget failed, the delivery is failed with the last error and no more is sent."""
    order_id, _ = await paid(shop)
    pos.default = Reply(503, "maintenance")
    push = worker(shop.services, max_attempts=3)
    now = utcnow()
    for _ in range(3):
        assert await within(push.run_once(now)) == 1
        now = (await within(delivery_of(shop.services.db, order_id))).next_attempt_at
    failed = await within(delivery_of(shop.services.db, order_id))
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 3)
    assert failed.last_error == "gave up after 3 attempts: HTTP 503: maintenance"
    assert await within(push.run_once(now + timedelta(days=1))) == 0
    await within(push.close())
    assert len(pos.received) == 3


async def test_a_push_that_never_reported_back_is_sent_again_after_its_lease(shop: Shop, pos: FakePos) -> None:
    """A claim whose outcome was never written (the pusher died) is pushed again, same key, after its lease."""
    order_id, queued = await paid(shop)
    now = utcnow()
    async with shop.services.db.session() as session:
        claimed = await within(pos_deliveries.claim_due(session, now, BATCH, lease_until=now + LEASE))
    assert [row.id for row in claimed] == [queued.id]
    push = worker(shop.services)
    assert await within(push.run_once(now + LEASE - timedelta(seconds=1))) == 0
    assert await within(push.run_once(now + LEASE)) == 1
    await within(push.close())
    done = await within(delivery_of(shop.services.db, order_id))
    assert (done.status, done.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert [r.headers["idempotency-key"] for r in pos.received] == [queued.idempotency_key]


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_row_being_claimed_is_skipped_by_other_instances(shop: Shop) -> None:
    """While one transaction holds a claim, another instance's claim skips the locked row instead of waiting."""
    _, queued = await paid(shop)
    now = utcnow()
    db = shop.services.db
    async with db.session() as first:
        mine = await within(pos_deliveries.claim_due(first, now, BATCH, lease_until=now + LEASE))
        async with db.session() as second:
            theirs = await within(pos_deliveries.claim_due(second, now, BATCH, lease_until=now + LEASE))
    assert ([row.id for row in mine], theirs) == ([queued.id], [])


async def test_a_stale_attempt_cannot_overwrite_a_newer_state(shop: Shop) -> None:
    """Only the latest attempt records a failure; a 2xx is recorded whatever state the row is in."""
    _, queued = await paid(shop)
    now = utcnow()
    db = shop.services.db
    async with db.session() as session:
        await within(pos_deliveries.claim_due(session, now, BATCH, lease_until=now))
        await within(pos_deliveries.claim_due(session, now, BATCH, lease_until=now + LEASE))
        assert not await within(pos_deliveries.mark_failed(session, queued.id, 1, "late answer to attempt 1"))
        assert await within(pos_deliveries.mark_failed(session, queued.id, 2, "HTTP 400"))
        assert await within(pos_deliveries.mark_delivered(session, queued.id, now))
        assert not await within(pos_deliveries.mark_delivered(session, queued.id, now))
        assert not await within(pos_deliveries.schedule_retry(session, queued.id, 2, "HTTP 500", now))
    done = await within(delivery_of(db, queued.order_id))
    assert (done.status, done.attempts, done.last_error) == (DeliveryStatus.DELIVERED, 2, "HTTP 400")


async def test_one_round_pushes_a_batch_side_by_side(shop: Shop, pos: FakePos) -> None:
    """Several due deliveries go out in one round, each with its own key."""
    keys = {(await paid(shop))[1].idempotency_key for _ in range(3)}
    push = worker(shop.services)
    assert await within(push.run_once(utcnow())) == 3
    await within(push.close())
    assert {r.headers["idempotency-key"] for r in pos.received} == keys
    async with shop.services.db.session() as session:
        statuses = (await within(session.scalars(select(PosDelivery.status)))).all()
    assert statuses == [DeliveryStatus.DELIVERED] * 3


async def test_the_background_loop_delivers_and_stops(shop: Shop, pos: FakePos) -> None:
    """Started, the worker delivers a paid order by itself within a round or two; closed, it stops."""
    order_id, _ = await paid(shop)
    push = worker(shop.services)
    push.start()
    try:
        async with asyncio.timeout(LIMIT_S):
            # The outcome is a database row: polling it is the only way to see it.
            while (await delivery_of(shop.services.db, order_id)).status != DeliveryStatus.DELIVERED:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await within(push.close())
    assert len(pos.received) == 1


async def test_without_a_pos_url_the_worker_does_nothing(services: Services, shop: Shop) -> None:
    """With `POS_API_URL` unset the worker is idle: no loop, and a round sends nothing."""
    order_id, _ = await paid(shop)
    idle = PosWorker(services.db, services.settings.model_copy(update={"POS_API_URL": None}))
    assert not idle.enabled
    idle.start()
    assert await within(idle.run_once(utcnow())) == 0
    await within(idle.close())
    assert (await within(delivery_of(services.db, order_id))).status == DeliveryStatus.PENDING


def test_backoff_doubles_from_2_s_to_a_5_min_cap_with_jitter() -> None:
    """Steps of 2, 4, 8 ... s capped at 300 s; jitter keeps each between half and all of its step."""
    assert [backoff_s(n, lambda: 1.0) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert [backoff_s(n, lambda: 0.0) for n in (1, 5, 10)] == [1, 16, 150]
    assert backoff_s(10_000, lambda: 1.0) == MAX_DELAY_S
    assert backoff_s(1, lambda: 1.0, retry_after_s=30) == 30
    assert backoff_s(8, lambda: 1.0, retry_after_s=10) == 256
    assert backoff_s(1, lambda: 1.0, retry_after_s=86_400) == MAX_DELAY_S
