"""Payment results (`record_result` in server/orders/payment_changes.py), on SQLite and PostgreSQL.

A result is never dropped: an approval pays the order, or becomes `needs_refund` when the
order cannot take it, even after the payment ended without money; a decline or failure is
final; the same result again changes nothing; anything else for a final payment is
`conflict`.
"""

from __future__ import annotations

import pytest

from channels import names
from persistence.base import rfc3339, utcnow
from persistence.database import Database
from persistence.enums import DeadlineKind, DeliveryStatus, OrderStatus, PaymentMethod, PaymentStatus
from persistence.payments import PaymentRecord, lock_payment
from server.errors import ApiError
from server.orders.payment_changes import record_result
from tests.orders.order_rows import (
    LONG_AGO,
    Counter,
    Heard,
    add_counter,
    add_order,
    add_payment,
    deadline_done_at,
    open_deadline,
    order_row,
    payment_row,
    pos_queue,
    settings,
)
from tests.orders.payment_helpers import A, P, _payment_audience, _unchanged


def _order_paid_audience(counter: Counter) -> list[tuple[str, str]]:
    return [
        (names.branch_orders(counter.branch_id), "order.paid"),
        (names.device(counter.kiosk_id), "order.paid"),
        (names.branch_kitchen(counter.branch_id), "order.queued"),
        (names.branch_board(counter.branch_id), "board.updated"),
    ]


async def _record(
    db: Database,
    payment_id: int,
    status: PaymentStatus,
    provider_ref: str | None = None,
    message: str | None = None,
    *,
    pos: bool = False,
) -> tuple[PaymentRecord, Heard]:
    """Lock the payment and record `status` in a transaction of its own, as a command does; the payment as
    `record_result` returned it, and what it emitted."""
    heard = Heard()
    async with db.session() as session:
        payment = await lock_payment(session, payment_id)
        assert payment is not None
        recorded = await record_result(session, payment, status, provider_ref, message, heard, settings(pos=pos))
    return recorded, heard


# Results for a payment in flight


@pytest.mark.parametrize("before", [P.PENDING, P.PROCESSING])
async def test_an_approval_pays_the_order_and_ends_both_deadlines(db: Database, before: PaymentStatus) -> None:
    """Approved: the payment takes the reference, the message and its moments; the order is paid; staff, kiosk
    and terminal hear `payment.approved`, and the order's payment is announced like any other."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, before)
    await open_deadline(db, DeadlineKind.PAYMENT, payment_id)
    await open_deadline(db, DeadlineKind.ORDER_PAYMENT, order_id)
    start = utcnow()
    recorded, heard = await _record(db, payment_id, P.APPROVED, "auth-1", "ok")
    end = utcnow()

    stored = await payment_row(db, payment_id)
    assert (recorded.id, recorded.status) == (payment_id, P.APPROVED)
    assert (stored.status, stored.provider_ref, stored.message) == (P.APPROVED, "auth-1", "ok")
    assert stored.approved_at is not None and start <= stored.approved_at <= end
    assert stored.finished_at == stored.approved_at
    order = await order_row(db, order_id)
    assert order.status == OrderStatus.PAID
    assert order.paid_at is not None and start <= order.paid_at <= end
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, payment_id) == stored.finished_at
    assert await deadline_done_at(db, DeadlineKind.ORDER_PAYMENT, order_id) == order.paid_at

    assert heard.pairs() == sorted(_payment_audience(counter, "payment.approved") + _order_paid_audience(counter))
    data = heard.data(names.device(counter.terminal_id), "payment.approved")
    assert {key: data[key] for key in ("id", "order_id", "status", "provider_ref", "message", "amount")} == {
        "id": payment_id,
        "order_id": order_id,
        "status": "approved",
        "provider_ref": "auth-1",
        "message": "ok",
        "amount": order.total,
    }
    assert (data["approved_at"], data["finished_at"]) == (rfc3339(stored.approved_at), rfc3339(stored.approved_at))


@pytest.mark.parametrize("result", [P.DECLINED, P.FAILED])
async def test_a_decline_or_failure_is_final_and_the_order_still_awaits_payment(
    db: Database, result: PaymentStatus
) -> None:
    """Declined or failed: the payment is finished (never approved) and its deadline ends; the order, its
    deadline and the kitchen are untouched; staff, kiosk and terminal hear it."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PROCESSING)
    await open_deadline(db, DeadlineKind.PAYMENT, payment_id)
    await open_deadline(db, DeadlineKind.ORDER_PAYMENT, order_id)
    start = utcnow()
    _, heard = await _record(db, payment_id, result, None, "card says no")

    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.message, stored.approved_at) == (result, "card says no", None)
    assert stored.finished_at is not None and start <= stored.finished_at <= utcnow()
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, payment_id) == stored.finished_at
    order = await order_row(db, order_id)
    assert (order.status, order.updated_at) == (A, LONG_AGO)
    assert await deadline_done_at(db, DeadlineKind.ORDER_PAYMENT, order_id) is None
    assert heard.pairs() == sorted(_payment_audience(counter, f"payment.{result.value}"))
    assert heard.data(names.branch_orders(counter.branch_id), f"payment.{result.value}")["status"] == result.value


@pytest.mark.parametrize("ended", [P.EXPIRED, P.CANCELLED, P.DECLINED, P.FAILED])
async def test_an_approval_after_the_payment_ended_without_money_still_pays(db: Database, ended: PaymentStatus) -> None:
    """A late approval is never dropped: the payment is approved now, keeps the moment it first ended, and the
    order is paid."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, ended)
    start = utcnow()
    _, heard = await _record(db, payment_id, P.APPROVED, "auth-late")

    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.provider_ref, stored.finished_at) == (P.APPROVED, "auth-late", LONG_AGO)
    assert stored.approved_at is not None and start <= stored.approved_at <= utcnow()
    assert (await order_row(db, order_id)).status == OrderStatus.PAID
    assert heard.pairs() == sorted(_payment_audience(counter, "payment.approved") + _order_paid_audience(counter))


@pytest.mark.parametrize(
    ("before", "order_status"),
    [(P.PENDING, OrderStatus.CANCELLED), (P.PROCESSING, OrderStatus.PAID), (P.EXPIRED, OrderStatus.CANCELLED)],
)
async def test_an_approval_the_order_cannot_take_needs_a_refund(
    db: Database, before: PaymentStatus, order_status: OrderStatus
) -> None:
    """The order was cancelled or paid otherwise: the money was taken, so the payment becomes `needs_refund` for
    staff; the order is untouched and not queued for the POS."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, order_status)
    payment_id = await add_payment(db, counter, order_id, before)
    start = utcnow()
    _, heard = await _record(db, payment_id, P.APPROVED, "auth-2", pos=True)

    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.provider_ref) == (P.NEEDS_REFUND, "auth-2")
    assert stored.approved_at is not None and start <= stored.approved_at <= utcnow()
    order = await order_row(db, order_id)
    assert (order.status, order.updated_at) == (order_status, LONG_AGO)
    assert heard.pairs() == sorted(_payment_audience(counter, "payment.needs_refund"))
    assert await pos_queue(db) == []


async def test_an_approval_queues_the_paid_order_for_the_pos(db: Database) -> None:
    """With a POS configured, the order an approval pays is queued for it."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PENDING)
    await _record(db, payment_id, P.APPROVED, pos=True)
    assert await pos_queue(db) == [(order_id, DeliveryStatus.PENDING, 0)]


async def test_a_gateway_payments_result_keeps_its_reference_and_reaches_no_terminal(db: Database) -> None:
    """A result without a reference keeps the one the payment API gave; only staff and the kiosk hear it."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PENDING, method=PaymentMethod.GATEWAY, provider_ref="pi_1")
    _, heard = await _record(db, payment_id, P.DECLINED)
    assert (await payment_row(db, payment_id)).provider_ref == "pi_1"
    assert heard.pairs() == sorted(_payment_audience(counter, "payment.declined", terminal=False))


# Results that change nothing


@pytest.mark.parametrize(
    ("before", "result"),
    [(P.APPROVED, P.APPROVED), (P.DECLINED, P.DECLINED), (P.FAILED, P.FAILED), (P.NEEDS_REFUND, P.APPROVED)],
)
async def test_the_same_result_again_changes_nothing(
    db: Database, before: PaymentStatus, result: PaymentStatus
) -> None:
    """A repeated result (an approval for a payment already `needs_refund` included) is answered with the payment
    as it is: no write, no event, its reference and message kept."""
    counter = await add_counter(db)
    order_status = OrderStatus.PAID if before == P.APPROVED else A
    order_id = await add_order(db, counter, order_status)
    payment_id = await add_payment(db, counter, order_id, before, provider_ref="auth-1")
    recorded, heard = await _record(db, payment_id, result, "auth-other", "again")
    assert (recorded.id, recorded.status, recorded.provider_ref) == (payment_id, before, "auth-1")
    assert heard.events == []
    await _unchanged(db, payment_id, before)
    assert (await order_row(db, order_id)).updated_at == LONG_AGO


@pytest.mark.parametrize(
    ("before", "result"),
    [
        (P.APPROVED, P.DECLINED),
        (P.APPROVED, P.FAILED),
        (P.DECLINED, P.FAILED),
        (P.FAILED, P.DECLINED),
        (P.EXPIRED, P.DECLINED),
        (P.CANCELLED, P.FAILED),
        (P.NEEDS_REFUND, P.DECLINED),
        (P.REFUNDED, P.APPROVED),
        (P.REFUNDED, P.DECLINED),
    ],
)
async def test_another_result_for_a_final_payment_is_conflict(
    db: Database, before: PaymentStatus, result: PaymentStatus
) -> None:
    """Only an approval may follow an end without money; anything else for a final payment is `conflict` naming
    the payment and its status, and nothing changes."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, before)
    with pytest.raises(ApiError) as caught:
        await _record(db, payment_id, result)
    assert (caught.value.code, caught.value.details) == ("conflict", {"payment_id": payment_id, "status": before.value})
    await _unchanged(db, payment_id, before)
    assert (await order_row(db, order_id)).status == A


async def test_a_status_that_is_no_result_is_refused(db: Database) -> None:
    """Only approved, declined and failed are results: any other status raises before anything changes."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PENDING)
    heard = Heard()
    async with db.session() as session:
        payment = await lock_payment(session, payment_id)
        assert payment is not None
        for status in (P.PENDING, P.PROCESSING, P.CANCELLED, P.EXPIRED, P.NEEDS_REFUND, P.REFUNDED):
            with pytest.raises(ValueError, match="is not a payment result"):
                await record_result(session, payment, status, "x", "y", heard, settings())
    assert heard.events == []
    await _unchanged(db, payment_id, P.PENDING)
