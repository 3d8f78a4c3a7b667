"""Payment commands: a kiosk asks its paired terminal to charge an order; the terminal reports back.

`payment.start` creates one payment for the order's server total and sends
`payment.requested` to the kiosk's paired terminal, which must be online and free. A
double tap or a retry finds the payment already in flight and answers it: one payment,
one charge request. The terminal moves it with `payment.progress` and `payment.result`
(server/orders/payment_changes.py); the kiosk may `payment.cancel` it until it is final, and an
unanswered payment expires after `PAYMENT_TIMEOUT_S` (server/workers/deadlines.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.exc import IntegrityError

from persistence import payments
from persistence.enums import DeviceKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.payments import PaymentRecord, lock_payment
from server.commands.orders import load_order
from server.commands.router import CommandContext, CommandRegistry, Who
from server.errors import ApiError
from server.orders.order_changes import conflict
from server.orders.payment_changes import payment_conflict, record_result
from server.payloads.payment import PaymentView, announce_payment, payment_data
from server.validation import Input, RowId

registry = CommandRegistry()

KIOSKS = Who(devices=frozenset({DeviceKind.KIOSK}))
TERMINALS = Who(devices=frozenset({DeviceKind.PAYMENT_TERMINAL}))


class StartPayment(Input):
    """`payment.start`: the order to charge (its total, as the server priced it)."""

    order_id: RowId


class PaymentRef(Input):
    """A payment to act on."""

    payment_id: RowId


class Progress(Input):
    """`payment.progress`: the terminal started charging (card read, PIN entry...)."""

    payment_id: RowId
    status: Literal["processing"]


class Result(Input):
    """`payment.result`: the terminal's final word, with the acquirer's reference and a message for people."""

    payment_id: RowId
    status: Literal["approved", "declined", "failed"]
    provider_ref: str | None = Field(default=None, max_length=255)
    message: str | None = Field(default=None, max_length=500)


async def _terminal_payment(ctx: CommandContext, payment_id: int) -> PaymentRecord:
    payment = await lock_payment(ctx.session, payment_id)
    if payment is None or payment.terminal_id != ctx.principal.id:
        raise ApiError("not_found", f"no payment {payment_id}", {"payment_id": payment_id})
    return payment


async def _free_terminal(ctx: CommandContext, terminal_id: int | None, in_flight: Sequence[PaymentRecord]) -> int:
    """The kiosk's paired terminal: `terminal_offline` unless it is connected, `terminal_busy` while it charges."""
    if terminal_id is None:
        raise ApiError("terminal_offline", "this kiosk has no paired payment terminal", {"terminal_id": None})
    if not await ctx.presence.is_online(terminal_id):
        raise ApiError("terminal_offline", "the payment terminal is not connected", {"terminal_id": terminal_id})
    busy = next((payment.id for payment in in_flight if payment.terminal_id == terminal_id), None)
    if busy is not None:
        raise ApiError("terminal_busy", "the payment terminal is charging another payment", {"payment_id": busy})
    return terminal_id


@registry.command(
    "payment.start",
    StartPayment,
    who=KIOSKS,
    summary="Ask the paired terminal to charge an order",
    reply=PaymentView,
    errors=("not_found", "conflict", "terminal_offline", "terminal_busy"),
)
async def start_payment(ctx: CommandContext, data: StartPayment) -> dict[str, Any]:
    """Create a pending payment for the order's total and send `payment.requested` to the paired terminal
    (or, with `PAYMENT_API_URL` set, leave it to the gateway worker to charge through the payment API)."""
    order = await load_order(ctx, data.order_id)
    if order.status != OrderStatus.AWAITING_PAYMENT:
        raise conflict(order, f"the order is {order.status.value}, not awaiting payment")
    # With a payment API, the gateway worker charges it after this commits; otherwise the paired terminal does.
    gateway = ctx.settings.PAYMENT_API_URL is not None
    paired, in_flight = await payments.paired_terminal_and_in_flight(ctx.session, ctx.principal.id, order.id)
    ongoing = next((payment for payment in in_flight if payment.order_id == order.id), None)
    if ongoing is not None:
        return payment_data(ongoing)  # a double tap: the charge already asked for
    terminal_id = None if gateway else await _free_terminal(ctx, paired, in_flight)
    now = ctx.now()
    values = {
        "order_id": order.id,
        "branch_id": order.branch_id,
        "method": PaymentMethod.GATEWAY if gateway else PaymentMethod.TERMINAL,
        "kiosk_id": ctx.principal.id,
        "terminal_id": terminal_id,
        "amount": order.total,
        "currency": order.currency,
        "status": PaymentStatus.PENDING,
        "idempotency_key": str(uuid.uuid4()),
        "provider_ref": None,
        "message": None,
        "approved_at": None,
        "finished_at": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    due = now + timedelta(seconds=ctx.settings.PAYMENT_TIMEOUT_S)
    try:
        payment = await payments.add_payment(ctx.session, values, due)
    except IntegrityError:
        # Another kiosk's payment took the terminal between our check and this insert: the refusal undoes the
        # whole command (no savepoint, which would cost two more round trips on every payment).
        raise ApiError("terminal_busy", "the payment terminal is charging another payment", {}) from None
    announce_payment(ctx.emit, payment, requested=True)
    return payment_data(payment)


@registry.command(
    "payment.cancel",
    PaymentRef,
    who=KIOSKS,
    summary="Stop a payment that is not final yet",
    reply=PaymentView,
    errors=("not_found", "conflict"),
)
async def cancel_payment(ctx: CommandContext, data: PaymentRef) -> dict[str, Any]:
    """Cancel this kiosk's payment while pending or processing; the terminal hears `payment.cancel_requested`."""
    cancelled = await payments.cancel_in_flight(ctx.session, data.payment_id, ctx.principal.id, ctx.now())
    if cancelled is not None:
        announce_payment(ctx.emit, cancelled, cancel_requested=True)
        return payment_data(cancelled)
    # Not cancelled: why, from the payment as it is.
    payment = await lock_payment(ctx.session, data.payment_id)
    if payment is None or payment.kiosk_id != ctx.principal.id:
        raise ApiError("not_found", f"no payment {data.payment_id}", {"payment_id": data.payment_id})
    raise payment_conflict(payment, f"payment {payment.id} is already {payment.status.value}")


@registry.command(
    "payment.progress",
    Progress,
    who=TERMINALS,
    summary="Report that the terminal is charging",
    reply=PaymentView,
    errors=("not_found", "conflict"),
)
async def progress(ctx: CommandContext, data: Progress) -> dict[str, Any]:
    """Move a pending payment of this terminal to processing (again: no change)."""
    moved = await payments.start_processing(ctx.session, data.payment_id, ctx.principal.id, ctx.now())
    if moved is not None:
        announce_payment(ctx.emit, moved)
        return payment_data(moved)
    # Not moved: why, from the payment as it is.
    payment = await _terminal_payment(ctx, data.payment_id)
    if payment.status == PaymentStatus.PROCESSING:
        return payment_data(payment)
    raise payment_conflict(payment, f"payment {payment.id} is already {payment.status.value}")


@registry.command(
    "payment.result",
    Result,
    who=TERMINALS,
    summary="Report the terminal's final result",
    reply=PaymentView,
    errors=("not_found", "conflict"),
)
async def result(ctx: CommandContext, data: Result) -> dict[str, Any]:
    """Record approved, declined or failed; an approval pays the order, even one that arrives late."""
    status = PaymentStatus(data.status)
    if status != PaymentStatus.APPROVED:
        # A decline or failure of a payment in flight needs no order: written at once, with its deadline finished.
        ended = await payments.record_in_flight_result(
            ctx.session, data.payment_id, ctx.principal.id, status, data.provider_ref, data.message, ctx.now()
        )
        if ended is not None:
            announce_payment(ctx.emit, ended)
            return payment_data(ended)
    # An approval (which pays the order, or needs a refund), or a result for a payment no longer in flight.
    payment = await _terminal_payment(ctx, data.payment_id)
    await record_result(ctx.session, payment, status, data.provider_ref, data.message, ctx.emit, ctx.settings)
    return payment_data(payment)
