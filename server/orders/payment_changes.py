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

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from channels.unit_of_work import Emit
from persistence.base import utcnow
from persistence.enums import PaymentMethod, PaymentStatus
from persistence.payments import IN_FLIGHT, PaymentRecord, save_payment
from server.errors import ApiError, ErrorCode
from server.integrations.payment_gateway import GatewayBusy, GatewayError, GatewayRejected
from server.orders.order_changes import pay_if_awaited
from server.payloads.payment import PaymentLike, announce_payment
from server.settings import Settings

RESULTS = (PaymentStatus.APPROVED, PaymentStatus.DECLINED, PaymentStatus.FAILED)
# Payments that ended without money: an approval arriving after all still counts.
ENDED_WITHOUT_MONEY = (PaymentStatus.EXPIRED, PaymentStatus.CANCELLED, PaymentStatus.DECLINED, PaymentStatus.FAILED)


def payment_conflict(payment: PaymentLike, message: str) -> ApiError:
    """`conflict` for a payment whose state does not allow the change."""
    return ApiError("conflict", message, {"payment_id": payment.id, "status": payment.status.value})


async def record_result(
    session: AsyncSession,
    payment: PaymentRecord,
    status: PaymentStatus,
    provider_ref: str | None,
    message: str | None,
    emit: Emit,
    settings: Settings,
) -> PaymentRecord:
    """Apply a final result (approved, declined or failed) to `payment` (locked by the caller); the record then
    holds the payment as stored."""
    if status not in RESULTS:
        raise ValueError(f"{status} is not a payment result")
    if payment.status == status or (payment.status == PaymentStatus.NEEDS_REFUND and status == PaymentStatus.APPROVED):
        return payment  # the same word twice: already recorded
    late = payment.status in ENDED_WITHOUT_MONEY and status == PaymentStatus.APPROVED
    if payment.status not in IN_FLIGHT and not late:
        raise payment_conflict(payment, f"payment {payment.id} is already {payment.status.value}")
    # An approval pays the order first, if it awaits payment (one conditional UPDATE), so that the payment is written
    # once, knowing which it is. Its events go out after the payment's, as devices expect the payment first.
    order_events: list[tuple[str, str, dict[str, Any]]] = []
    pays = status == PaymentStatus.APPROVED and (
        await pay_if_awaited(session, payment.order_id, lambda *event: order_events.append(event), settings) is not None
    )
    now = utcnow()
    payment.provider_ref = provider_ref or payment.provider_ref
    payment.message = message
    payment.finished_at = payment.finished_at or now
    if status != PaymentStatus.APPROVED:
        payment.status = status
    else:
        payment.approved_at = now
        # The money was taken but, unless the order awaits it, the order cannot take it: staff must give it back.
        payment.status = PaymentStatus.APPROVED if pays else PaymentStatus.NEEDS_REFUND
    await save_payment(session, payment, at=now, finish_deadline=True)
    announce_payment(emit, payment)
    for event in order_events:
        emit(*event)
    return payment


class Refunder(Protocol):
    """What gives money back through the payment API (server/integrations/payment_gateway.py)."""

    async def refund(self, provider_ref: str, amount: int, idempotency_key: str) -> object:
        """Refund `amount` of the payment the API knows as `provider_ref`; raises when it cannot."""
        ...


async def refund_payment(
    session: AsyncSession, payment: PaymentRecord, emit: Emit, gateway: Refunder | None
) -> PaymentRecord:
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
    await save_payment(session, payment, at=utcnow())
    announce_payment(emit, payment)
    return payment


def _refund_not_done(code: ErrorCode, payment: PaymentRecord, exc: GatewayError) -> ApiError:
    # `unavailable`: no answer (or busy), so trying again is safe with the same key; `conflict`: refused.
    verdict = "refused" if code == "conflict" else "did not answer"
    message = f"the payment API {verdict} the refund of payment {payment.id} ({exc.message}); nothing was changed"
    return ApiError(code, message, {"payment_id": payment.id, "gateway_code": exc.code})
