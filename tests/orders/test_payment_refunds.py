"""Refunds (`refund_payment` in server/orders/payment_changes.py), on SQLite and PostgreSQL.

A refund gives back an approved or `needs_refund` payment, by hand for terminal and cash payments
and through the payment API for gateway payments, and changes nothing when the API does not do it.
"""

from __future__ import annotations

import pytest

from channels import names
from persistence.database import Database
from persistence.enums import OrderStatus, PaymentMethod, PaymentStatus
from persistence.payments import lock_payment
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
from server.orders.payment_changes import refund_payment
from tests.orders.order_rows import LONG_AGO, Heard, add_counter, add_order, add_payment, order_row, payment_row
from tests.orders.payment_helpers import A, P, _payment_audience, _unchanged


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
