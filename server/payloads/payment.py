"""A payment as every device and channel sees it, and which channels hear of each change.

One shape everywhere (replies, events, snapshots, the REST routes): `PaymentView`. The kiosk
that started it (`device:{k}`), the terminal charging it (`device:{t}`) and staff
(`branch:{b}:orders`) hear `payment.<status>` on every change. The terminal is also asked
to act: `payment.requested` when a charge starts, `payment.cancel_requested` when the kiosk
cancels it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from channels import names
from channels.unit_of_work import Emit
from persistence.base import flushed
from persistence.enums import PaymentMethod, PaymentStatus
from persistence.payments import PaymentRecord
from persistence.tables import Payment
from server.payloads.moment import Moment

# A payment as a command reads it (a plain record) or as the REST routes and snapshots load it (the ORM's).
PaymentLike = PaymentRecord | Payment


class PaymentView(BaseModel):
    """A payment: reply of every payment command, data of every `payment.*` event; money in minor units."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    id: int
    version: int = Field(description="raised by every change of the payment: keep the newest, ignore an older one")
    order_id: int
    branch_id: int
    method: PaymentMethod
    kiosk_id: int | None
    terminal_id: int | None
    amount: int
    currency: str
    status: PaymentStatus
    provider_ref: str | None = Field(description="the acquirer's or payment API's reference")
    message: str | None = Field(description="the terminal's or API's words, for people")
    created_at: Moment
    approved_at: Moment | None
    finished_at: Moment | None


def payment_data(payment: PaymentLike) -> dict[str, Any]:
    """The payment with its amount in minor units, its status and the provider's reference, as JSON data."""
    return PaymentView.model_validate(flushed(payment)).model_dump(mode="json")


def announce_payment(
    emit: Emit, payment: PaymentLike, *, requested: bool = False, cancel_requested: bool = False
) -> None:
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
