"""Payment results and refunds (server/orders/payment_changes.py), on SQLite and PostgreSQL.

A result is never dropped: an approval pays the order, or becomes `needs_refund` when the
order cannot take it, even after the payment ended without money; a decline or failure is
final; the same result again changes nothing; anything else for a final payment is
`conflict`. A refund gives back an approved or `needs_refund` payment, through the payment
API for gateway payments, and changes nothing when the API does not do it.
"""

from __future__ import annotations

import asyncio

import pytest

from channels import names
from persistence.base import rfc3339, utcnow
from persistence.database import Database
from persistence.enums import DeadlineKind, DeliveryStatus, OrderStatus, PaymentMethod, PaymentStatus
from persistence.payments import PaymentRecord, lock_payment
from persistence.tables import Payment
from server.errors import ApiError
from server.integrations.payment_gateway import (
    GatewayBadResponse,
    GatewayBusy,
    GatewayDeclined,
    GatewayError,
    GatewayRefund,
    GatewayRejected,
    GatewayUnavailable,
)
from server.orders.payment_changes import record_result, refund_payment
from tests.locks import until_blocked_or_done
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

# Bounds every wait on another transaction, so that a hang fails the test instead of stalling the suite.
TIMEOUT_S = 30

A = OrderStatus.AWAITING_PAYMENT
P = PaymentStatus


class Refunds:
    """A payment API that keeps every refund asked of it and raises the given errors, one per call, first."""

    def __init__(self, *errors: GatewayError) -> None:
        self.errors = list(errors)
        self.asked: list[tuple[str, int, str]] = []

    async def refund(self, provider_ref: str, amount: int, idempotency_key: str) -> object:
        """Keep the call; raise the next error, if any is left."""
        self.asked.append((provider_ref, amount, idempotency_key))
        if self.errors:
            raise self.errors.pop(0)
        return GatewayRefund(id="re_1", status="succeeded")


def _payment_audience(counter: Counter, event: str, *, terminal: bool = True) -> list[tuple[str, str]]:
    """Staff, the kiosk and (for a terminal payment) the terminal hear `event`."""
    heard = [(names.branch_orders(counter.branch_id), event), (names.device(counter.kiosk_id), event)]
    if terminal:
        heard.append((names.device(counter.terminal_id), event))
    return heard


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


async def _unchanged(db: Database, payment_id: int, status: PaymentStatus) -> None:
    """The payment is still as `add_payment` wrote it."""
    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.message, stored.updated_at) == (status, "as it was", LONG_AGO)


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


# Refunds


async def _refund(db: Database, payment_id: int, gateway: Refunds | None) -> Heard:
    """Lock the payment and refund it in a transaction of its own, as the refund routes do; what it emitted."""
    heard = Heard()
    async with db.session() as session:
        payment = await lock_payment(session, payment_id)
        assert payment is not None
        assert await refund_payment(session, payment, heard, gateway) is payment
    return heard


@pytest.mark.parametrize("method", [PaymentMethod.TERMINAL, PaymentMethod.CASH])
@pytest.mark.parametrize("before", [P.APPROVED, P.NEEDS_REFUND])
async def test_a_terminal_or_cash_payment_is_refunded_by_hand(
    db: Database, before: PaymentStatus, method: PaymentMethod
) -> None:
    """Given back at the counter, not through the payment API even when there is one: the payment is `refunded`
    with its moments kept; its order is left to the caller; those who heard of it hear `payment.refunded`."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    payment_id = await add_payment(db, counter, order_id, before, method=method, provider_ref="auth-1")
    api = Refunds()
    heard = await _refund(db, payment_id, api)
    assert api.asked == []
    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.approved_at, stored.finished_at) == (P.REFUNDED, LONG_AGO, LONG_AGO)
    assert (await order_row(db, order_id)).status == OrderStatus.PAID
    if method == PaymentMethod.TERMINAL:
        assert heard.pairs() == sorted(_payment_audience(counter, "payment.refunded"))
    else:
        assert heard.pairs() == [(names.branch_orders(counter.branch_id), "payment.refunded")]
    assert heard.data(names.branch_orders(counter.branch_id), "payment.refunded")["status"] == "refunded"


async def test_a_gateway_payment_is_refunded_through_the_api_with_its_refund_key(db: Database) -> None:
    """The API is asked once for the payment's amount under its reference, with the payment's own refund key."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    payment_id = await add_payment(db, counter, order_id, P.APPROVED, method=PaymentMethod.GATEWAY, provider_ref="pi_1")
    api = Refunds()
    heard = await _refund(db, payment_id, api)
    stored = await payment_row(db, payment_id)
    assert api.asked == [("pi_1", stored.amount, f"{stored.idempotency_key}:refund")]
    assert stored.status == P.REFUNDED
    assert heard.pairs() == sorted(_payment_audience(counter, "payment.refunded", terminal=False))


async def test_a_refund_tried_again_asks_the_api_with_the_same_key(db: Database) -> None:
    """The API did not answer the first try: nothing changed; the next try sends the same key, so the money goes
    back once, and then the payment is refunded."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    payment_id = await add_payment(db, counter, order_id, P.APPROVED, method=PaymentMethod.GATEWAY, provider_ref="pi_1")
    api = Refunds(GatewayUnavailable("no answer"))
    with pytest.raises(ApiError):
        await _refund(db, payment_id, api)
    await _unchanged(db, payment_id, P.APPROVED)
    await _refund(db, payment_id, api)
    assert len(api.asked) == 2 and api.asked[0] == api.asked[1]
    assert (await payment_row(db, payment_id)).status == P.REFUNDED


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (GatewayBusy("in progress", status_code=409, code="idempotency_in_progress"), "unavailable"),
        (GatewayUnavailable("no answer", code="timeout"), "unavailable"),
        (GatewayBadResponse("not json", status_code=200, code="bad_body"), "unavailable"),
        (GatewayRejected("refused", status_code=400, code="charge_already_refunded"), "conflict"),
        (GatewayDeclined("declined", status_code=402, code="refund_declined"), "conflict"),
    ],
    ids=["busy", "unavailable", "bad-response", "rejected", "declined"],
)
async def test_a_refund_the_api_does_not_make_changes_nothing(db: Database, error: GatewayError, code: str) -> None:
    """No answer or busy: `unavailable` (safe to try again); refused: `conflict`; with the API's code in the
    details either way, and the payment as it was."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    payment_id = await add_payment(db, counter, order_id, P.APPROVED, method=PaymentMethod.GATEWAY, provider_ref="pi_1")
    heard = Heard()
    with pytest.raises(ApiError) as caught:
        async with db.session() as session:
            payment = await lock_payment(session, payment_id)
            assert payment is not None
            await refund_payment(session, payment, heard, Refunds(error))
    assert (caught.value.code, caught.value.details) == (code, {"payment_id": payment_id, "gateway_code": error.code})
    assert "nothing was changed" in caught.value.message
    assert heard.events == []
    await _unchanged(db, payment_id, P.APPROVED)


@pytest.mark.parametrize(("configured", "provider_ref"), [(False, "pi_1"), (True, None)], ids=["no-api", "no-ref"])
async def test_a_gateway_refund_without_the_api_or_its_reference_is_unavailable(
    db: Database, configured: bool, provider_ref: str | None
) -> None:
    """With no payment API configured, or no reference to name the payment by, nothing can be given back."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    payment_id = await add_payment(
        db, counter, order_id, P.APPROVED, method=PaymentMethod.GATEWAY, provider_ref=provider_ref
    )
    api = Refunds() if configured else None
    with pytest.raises(ApiError) as caught:
        await _refund(db, payment_id, api)
    assert caught.value.code == "unavailable"
    assert api is None or api.asked == []
    await _unchanged(db, payment_id, P.APPROVED)


@pytest.mark.parametrize("before", [P.PENDING, P.PROCESSING, P.DECLINED, P.FAILED, P.CANCELLED, P.EXPIRED, P.REFUNDED])
async def test_a_payment_that_holds_no_money_to_give_back_is_conflict(db: Database, before: PaymentStatus) -> None:
    """Only approved and `needs_refund` payments are refunded: others are `conflict` and the API is not asked."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, before, method=PaymentMethod.GATEWAY, provider_ref="pi_1")
    api = Refunds()
    with pytest.raises(ApiError) as caught:
        await _refund(db, payment_id, api)
    assert (caught.value.code, caught.value.details) == ("conflict", {"payment_id": payment_id, "status": before.value})
    assert api.asked == []
    await _unchanged(db, payment_id, before)


# Locking


async def test_locking_reads_the_payment(db: Database) -> None:
    """`lock_payment` gives the payment; an unknown id is None."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PENDING)
    async with db.session() as session:
        payment = await lock_payment(session, payment_id)
        assert payment is not None and (payment.id, payment.order_id) == (payment_id, order_id)
        assert await lock_payment(session, payment_id + 1000) is None


async def _lock_in_own_transaction(db: Database, payment_id: int) -> int | None:
    async with db.session() as session:
        payment = await lock_payment(session, payment_id)
        return None if payment is None else payment.id


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_payment_another_transaction_holds_is_waited_for_or_passed_over_if_free(db: Database) -> None:
    """While another transaction holds the payment (a result being recorded), `lock_payment` waits for it, and
    with `if_free` answers None at once (the deadline worker passes over it)."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PENDING)
    async with db.session() as holder:
        await holder.get(Payment, payment_id, with_for_update=True)
        async with db.session() as other:
            assert await asyncio.wait_for(lock_payment(other, payment_id, if_free=True), TIMEOUT_S) is None
        waiting = asyncio.create_task(_lock_in_own_transaction(db, payment_id))
        await until_blocked_or_done(db, waiting, TIMEOUT_S)
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, TIMEOUT_S) == payment_id
