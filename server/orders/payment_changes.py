"""Payment results, wherever they come from (a terminal, the payment API's answer or its webhook).

A payment is money: a result is never dropped. `record_result` applies a terminal's or
the gateway's final word to a payment in one transaction:

- pending/processing + approved: the payment is approved and the order paid (kitchen and
  board hear it); if the order cannot be paid any more (cancelled, or paid by another
  payment), the payment becomes `needs_refund` instead, for staff to settle.
- pending/processing + declined/failed: final; the order stays awaiting payment.
- expired/cancelled/declined/failed + approved (late): recorded like the above, never
  dropped (a terminal may report a decline before the approval it meant, and a card
  API lets a failed intent be retried and succeed).
- the same result again: nothing changes (idempotent); any other result for a final
  payment is `conflict`.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.unit_of_work import Emit
from persistence import deadlines
from persistence.base import utcnow
from persistence.enums import DeadlineKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.tables import Payment
from server.errors import ApiError, ErrorCode
from server.integrations.payment_gateway import GatewayBusy, GatewayError, GatewayRejected
from server.orders.order_changes import lock_order, mark_order_paid
from server.payloads.payment import announce_payment
from server.settings import Settings

IN_FLIGHT = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
RESULTS = (PaymentStatus.APPROVED, PaymentStatus.DECLINED, PaymentStatus.FAILED)
# Payments that ended without money: an approval arriving after all still counts.
ENDED_WITHOUT_MONEY = (PaymentStatus.EXPIRED, PaymentStatus.CANCELLED, PaymentStatus.DECLINED, PaymentStatus.FAILED)


# Built once (every payment command runs one): a statement object keeps its SQL cache key for the next call.
_READ_PAYMENT = select(Payment).where(Payment.id == bindparam("payment_id"))
_LOCK_PAYMENT = _READ_PAYMENT.with_for_update()
_LOCK_PAYMENT_IF_FREE = _READ_PAYMENT.with_for_update(skip_locked=True)


async def lock_payment(session: AsyncSession, payment_id: int, *, if_free: bool = False) -> Payment | None:
    """The payment, its row locked until the transaction ends.

    `if_free`: None at once when another transaction holds the payment, instead of waiting for it.
    """
    statement = _LOCK_PAYMENT_IF_FREE if if_free else _LOCK_PAYMENT
    return (await session.execute(statement, {"payment_id": payment_id})).scalar_one_or_none()


def payment_conflict(payment: Payment, message: str) -> ApiError:
    """`conflict` for a payment whose state does not allow the change."""
    return ApiError("conflict", message, {"payment_id": payment.id, "status": payment.status.value})


async def record_result(
    session: AsyncSession,
    payment: Payment,
    status: PaymentStatus,
    provider_ref: str | None,
    message: str | None,
    emit: Emit,
    settings: Settings,
) -> Payment:
    """Apply a final result (approved, declined or failed) to `payment` (locked by the caller)."""
    if status not in RESULTS:
        raise ValueError(f"{status} is not a payment result")
    if payment.status == status or (payment.status == PaymentStatus.NEEDS_REFUND and status == PaymentStatus.APPROVED):
        return payment  # the same word twice: already recorded
    late = payment.status in ENDED_WITHOUT_MONEY and status == PaymentStatus.APPROVED
    if payment.status not in IN_FLIGHT and not late:
        raise payment_conflict(payment, f"payment {payment.id} is already {payment.status.value}")
    # The order is read (and locked) before the payment changes, so that the payment is written in one UPDATE.
    order = None
    if status == PaymentStatus.APPROVED:
        order = await lock_order(session, payment.order_id)
        assert order is not None  # orders are never deleted while payments point at them
    now = utcnow()
    payment.provider_ref = provider_ref or payment.provider_ref
    payment.message = message
    payment.finished_at = payment.finished_at or now
    pays = order is not None and order.status == OrderStatus.AWAITING_PAYMENT
    if order is None:
        payment.status = status
    else:
        payment.approved_at = now
        # The money was taken but, unless the order awaits it, the order cannot take it: staff must give it back.
        payment.status = PaymentStatus.APPROVED if pays else PaymentStatus.NEEDS_REFUND
    await deadlines.finish(session, DeadlineKind.PAYMENT, payment.id, now)
    announce_payment(emit, payment)
    if order is not None and pays:
        await mark_order_paid(session, order, emit, settings)
    return payment


class Refunder(Protocol):
    """What gives money back through the payment API (server/integrations/payment_gateway.py)."""

    async def refund(self, provider_ref: str, amount: int, idempotency_key: str) -> object:
        """Refund `amount` of the payment the API knows as `provider_ref`; raises when it cannot."""
        ...


async def refund_payment(session: AsyncSession, payment: Payment, emit: Emit, gateway: Refunder | None) -> Payment:
    """Give an approved or `needs_refund` payment back (locked by the caller): through the payment API for
    gateway payments, by hand at the terminal or till otherwise; it becomes `refunded`."""
    if payment.status not in (PaymentStatus.APPROVED, PaymentStatus.NEEDS_REFUND):
        raise payment_conflict(payment, f"payment {payment.id} is {payment.status.value}: nothing to refund")
    if payment.method == PaymentMethod.GATEWAY:
        if gateway is None or payment.provider_ref is None:
            raise ApiError("unavailable", "the payment API is not configured; nothing was changed", {})
        # The same key on every try: a retried refund never pays twice.
        try:
            await gateway.refund(payment.provider_ref, payment.amount, f"{payment.idempotency_key}:refund")
        except GatewayBusy as exc:
            raise _refund_not_done("unavailable", payment, exc) from exc
        except GatewayRejected as exc:
            raise _refund_not_done("conflict", payment, exc) from exc
        except GatewayError as exc:
            raise _refund_not_done("unavailable", payment, exc) from exc
    payment.status = PaymentStatus.REFUNDED
    await session.flush()
    announce_payment(emit, payment)
    return payment


def _refund_not_done(code: ErrorCode, payment: Payment, exc: GatewayError) -> ApiError:
    # `unavailable`: no answer (or busy), so trying again is safe with the same key; `conflict`: refused.
    verdict = "refused" if code == "conflict" else "did not answer"
    message = f"the payment API {verdict} the refund of payment {payment.id} ({exc.message}); nothing was changed"
    return ApiError(code, message, {"payment_id": payment.id, "gateway_code": exc.code})
