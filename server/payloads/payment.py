"""A payment as every device and channel sees it, and which channels hear of each change.

The kiosk that started it (`device:{k}`), the terminal charging it (`device:{t}`) and
staff (`branch:{b}:orders`) hear `payment.<status>` on every change. The terminal is also
asked to act: `payment.requested` when a charge starts, `payment.cancel_requested` when
the kiosk cancels it.
"""

from __future__ import annotations

from typing import Any

from channels import names
from channels.unit_of_work import Emit
from persistence.base import rfc3339
from persistence.enums import PaymentStatus
from persistence.tables import Payment


def payment_data(payment: Payment) -> dict[str, Any]:
    """The payment with its amount in minor units, its status and the provider's reference."""
    return {
        "id": payment.id,
        "order_id": payment.order_id,
        "branch_id": payment.branch_id,
        "method": payment.method.value,
        "kiosk_id": payment.kiosk_id,
        "terminal_id": payment.terminal_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status.value,
        "provider_ref": payment.provider_ref,
        "message": payment.message,
        "created_at": rfc3339(payment.created_at),
        "approved_at": rfc3339(payment.approved_at) if payment.approved_at else None,
        "finished_at": rfc3339(payment.finished_at) if payment.finished_at else None,
    }


def announce_payment(emit: Emit, payment: Payment, *, requested: bool = False, cancel_requested: bool = False) -> None:
    """Emit `payment.<status>` to the kiosk, the terminal and staff, plus the terminal's requests."""
    data = payment_data(payment)
    event = f"payment.{payment.status.value}"
    emit(names.branch_orders(payment.branch_id), event, data)
    if payment.kiosk_id is not None:
        emit(names.device(payment.kiosk_id), event, data)
    if payment.terminal_id is not None:
        if requested:
            emit(names.device(payment.terminal_id), "payment.requested", data)
        elif cancel_requested:
            emit(names.device(payment.terminal_id), "payment.cancel_requested", data)
        elif payment.status != PaymentStatus.PENDING:
            emit(names.device(payment.terminal_id), event, data)
