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
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from persistence import deadlines
from persistence.enums import DeadlineKind, DeviceKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.tables import Device, Payment
from server.commands.orders import load_order
from server.commands.router import CommandContext, CommandRegistry, Who
from server.errors import ApiError
from server.orders.order_changes import conflict
from server.orders.payment_changes import IN_FLIGHT, lock_payment, payment_conflict, record_result
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


# Built once (every payment.start runs it): a statement object keeps its SQL cache key for the next call.
# The kiosk's paired terminal, with the order's and that terminal's payments in flight: one row per payment (None
# when there is none), in one round trip.
_PAIRED_AND_IN_FLIGHT = (
    select(Device.paired_terminal_id, Payment)
    .outerjoin(
        Payment,
        ((Payment.order_id == bindparam("order_id")) | (Payment.terminal_id == Device.paired_terminal_id))
        & Payment.status.in_(IN_FLIGHT),
    )
    .where(Device.id == bindparam("kiosk_id"))
)

# A pending payment of this terminal to processing, read back as it now is: one round trip where a lock and an
# UPDATE took two. Only what is not moved is read again, to say why.
_TO_PROCESSING = (
    update(Payment)
    .where(
        Payment.id == bindparam("b_payment_id"),
        Payment.terminal_id == bindparam("b_terminal_id"),
        Payment.status == PaymentStatus.PENDING,
    )
    .values(status=PaymentStatus.PROCESSING)
    .returning(Payment)
)


async def _terminal_payment(ctx: CommandContext, payment_id: int) -> Payment:
    payment = await lock_payment(ctx.session, payment_id)
    if payment is None or payment.terminal_id != ctx.principal.id:
        raise ApiError("not_found", f"no payment {payment_id}", {"payment_id": payment_id})
    return payment


async def _free_terminal(ctx: CommandContext, terminal_id: int | None, in_flight: Sequence[Payment]) -> int:
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
    rows = (
        await ctx.session.execute(_PAIRED_AND_IN_FLIGHT, {"order_id": order.id, "kiosk_id": ctx.principal.id})
    ).all()
    paired = None if gateway or not rows else rows[0][0]
    in_flight = [payment for _, payment in rows if payment is not None]
    ongoing = next((payment for payment in in_flight if payment.order_id == order.id), None)
    if ongoing is not None:
        return payment_data(ongoing)  # a double tap: the charge already asked for
    terminal_id = None if gateway else await _free_terminal(ctx, paired, in_flight)
    payment = Payment(
        order_id=order.id,
        branch_id=order.branch_id,
        method=PaymentMethod.GATEWAY if gateway else PaymentMethod.TERMINAL,
        kiosk_id=ctx.principal.id,
        terminal_id=terminal_id,
        amount=order.total,
        currency=order.currency,
        status=PaymentStatus.PENDING,
        idempotency_key=str(uuid.uuid4()),
    )
    ctx.session.add(payment)
    try:
        await ctx.session.flush()
    except IntegrityError:
        # Another kiosk's payment took the terminal between our check and this insert: the refusal undoes the
        # whole command (no savepoint, which would cost two more round trips on every payment).
        raise ApiError("terminal_busy", "the payment terminal is charging another payment", {}) from None
    due = ctx.now() + timedelta(seconds=ctx.settings.PAYMENT_TIMEOUT_S)
    await deadlines.schedule(ctx.session, DeadlineKind.PAYMENT, payment.id, due)
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
    payment = await lock_payment(ctx.session, data.payment_id)
    if payment is None or payment.kiosk_id != ctx.principal.id:
        raise ApiError("not_found", f"no payment {data.payment_id}", {"payment_id": data.payment_id})
    if payment.status not in IN_FLIGHT:
        raise payment_conflict(payment, f"payment {payment.id} is already {payment.status.value}")
    now = ctx.now()
    payment.status, payment.finished_at = PaymentStatus.CANCELLED, now
    await deadlines.finish(ctx.session, DeadlineKind.PAYMENT, payment.id, now)
    await ctx.session.flush()
    announce_payment(ctx.emit, payment, cancel_requested=True)
    return payment_data(payment)


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
    params = {"b_payment_id": data.payment_id, "b_terminal_id": ctx.principal.id}
    moved = (await ctx.session.scalars(_TO_PROCESSING, params)).one_or_none()
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
    payment = await _terminal_payment(ctx, data.payment_id)
    status = PaymentStatus(data.status)
    await record_result(ctx.session, payment, status, data.provider_ref, data.message, ctx.emit, ctx.settings)
    return payment_data(payment)
