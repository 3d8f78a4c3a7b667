"""REST routes: giving money back. An admin or the branch's manager refunds a paid order, or a
payment the server marked `needs_refund` (taken for an order that could not take it).

Gateway payments are refunded through the payment API (with an idempotency key, so a
retried refund never pays twice); terminal and cash payments are given back by hand at
the counter and recorded here. The kiosk, staff and (for an order) the kitchen and board
hear the change.
"""

from __future__ import annotations

from persistence.enums import PaymentStatus
from persistence.payments import lock_approved_payment, lock_payment
from server.api.orders import OrderDetailOut, order_detail
from server.api.payments import PaymentOut
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.domain.order_states import OrderAction
from server.errors import ApiError, not_found
from server.orders.order_changes import lock_order, move
from server.orders.payment_changes import refund_payment

router = ApiRouter("refunds")


@router.post(
    "/orders/{order_id}/refund",
    "Refund a paid order",
    permission=Permission.PAYMENTS_REFUND,
    response=OrderDetailOut,
    errors=("unauthorized", "forbidden", "not_found", "conflict", "unavailable"),
)
async def refund_order(call: Call[None, None]) -> OrderDetailOut:
    """Mark a paid order refunded and give its approved payment back (through the payment API where one is used).

    PROTOCOL.md allows it while the order is `paid` (not yet started in the kitchen): `conflict` otherwise.
    """
    order_id = call.path_int("order_id")
    order = await lock_order(call.session, order_id)
    if order is None:
        raise not_found("order", order_id)
    call.require_visible("order", order_id, order.branch_id)
    approved = await lock_approved_payment(call.session, order.id)
    await move(call.session, order, OrderAction.REFUND, call.emit)
    if approved is not None:
        await refund_payment(call.session, approved, call.emit, call.services.gateway)
    return await order_detail(call, order)


@router.post(
    "/payments/{payment_id}/refund",
    "Refund a payment that needs it",
    permission=Permission.PAYMENTS_REFUND,
    response=PaymentOut,
    errors=("unauthorized", "forbidden", "not_found", "conflict", "unavailable"),
)
async def refund_needs_refund(call: Call[None, None]) -> PaymentOut:
    """Give back a payment marked `needs_refund`; an approved payment is refunded with its order instead."""
    payment_id = call.path_int("payment_id")
    payment = await lock_payment(call.session, payment_id)
    if payment is None:
        raise not_found("payment", payment_id)
    call.require_visible("payment", payment_id, payment.branch_id)
    if payment.status != PaymentStatus.NEEDS_REFUND:
        message = f"payment {payment.id} is {payment.status.value}; refund its order instead"
        raise ApiError("conflict", message, {"payment_id": payment.id, "status": payment.status.value})
    await refund_payment(call.session, payment, call.emit, call.services.gateway)
    return PaymentOut.model_validate(payment)
