"""A paid order's receipt, as the kiosk that placed it (`order.receipt`) and staff (REST) read it.

One shape for both, built in one place (`order_receipt`): the branch, the order's number and
business day, its service mode, its frozen lines with their options and tax rates, the tax per
rate, the totals, and the payment that paid it with the terminal's or payment API's reference.
Money is in minor units of `currency`. Names are the menu's, as the order froze them, in the
order's `locale` (the customer's; the kitchen's names for orders from before languages). Printing
it is the device's business.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.enums import OrderStatus, PaymentMethod, PaymentStatus, ServiceMode
from persistence.tables import Branch, Payment
from server.errors import ApiError
from server.payloads.cart import ChosenOption, LineComponent
from server.payloads.moment import Moment
from server.payloads.order import AnyOrder
from server.payloads.payment import PaymentLike
from server.payloads.taxes import RateTaxView

# The states of an order that was paid: only these have a receipt (a cancelled order was never paid).
RECEIPTED = frozenset(
    {OrderStatus.PAID, OrderStatus.PREPARING, OrderStatus.READY, OrderStatus.COMPLETED, OrderStatus.REFUNDED}
)


class ReceiptBranch(BaseModel):
    """The branch that sold the order, as the receipt's header shows it."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    address: str | None
    currency: str
    timezone: str = Field(description="the IANA time zone of the branch: show the receipt's moments in it")


class ReceiptLine(BaseModel):
    """A line of the receipt, as frozen when the order was placed."""

    model_config = ConfigDict(extra="forbid")

    name: str
    qty: int
    unit_price: int = Field(description="the item's price with its options' deltas")
    options: list[ChosenOption]
    line_total: int = Field(description="unit_price × qty, tax included")
    tax_rate_bp: int | None = Field(description="the rate the line was taxed at; null on orders from before rates")
    components: list[LineComponent] = Field(
        default_factory=list, description="a combo's filled slots, each with its upcharge and options; else empty"
    )


class ReceiptPayment(BaseModel):
    """The payment that paid the order."""

    model_config = ConfigDict(extra="forbid")

    method: PaymentMethod
    amount: int
    provider_ref: str | None = Field(description="the acquirer's or payment API's reference; null for cash")
    approved_at: Moment | None


class ReceiptView(BaseModel):
    """A paid order's receipt; money in minor units of `currency`, `subtotal + tax == total`."""

    model_config = ConfigDict(extra="forbid")

    branch: ReceiptBranch
    order_id: int
    number: int = Field(description="the order number called out at the counter")
    business_date: date = Field(description="the branch's business day the order was placed on")
    service_mode: ServiceMode
    locale: str | None = Field(
        default=None, description="the customer's language, that the lines' names are in; null: from before languages"
    )
    status: OrderStatus
    currency: str = Field(description="the order's currency, which its money is in")
    lines: list[ReceiptLine]
    taxes: list[RateTaxView] = Field(description="the tax per rate, lowest rate first")
    subtotal: int = Field(description="total less tax")
    tax: int
    total: int
    paid_at: Moment
    payment: ReceiptPayment | None = Field(description="null for an order of total 0, paid without money")
    refunded_at: Moment | None = Field(description="when the order was refunded; null while it stands")


def build_receipt(order: AnyOrder, payment: PaymentLike | None, branch: Branch) -> ReceiptView:
    """The receipt of a paid order, from the order, the payment that paid it (None: nothing to pay) and its branch."""
    if order.paid_at is None:
        raise ValueError(f"order {order.id} was not paid: it has no receipt")
    return ReceiptView(
        branch=ReceiptBranch(
            id=branch.id, name=branch.name, address=branch.address, currency=branch.currency, timezone=branch.timezone
        ),
        order_id=order.id,
        number=order.number,
        business_date=order.business_date,
        service_mode=order.service_mode,
        locale=order.locale,
        status=order.status,
        currency=order.currency,
        lines=[
            ReceiptLine(
                name=line.display_name or line.name,
                qty=line.qty,
                unit_price=line.unit_price,
                options=[
                    ChosenOption.model_validate(option)
                    for option in (line.options if line.display_options is None else line.display_options)
                ],
                line_total=line.line_total,
                tax_rate_bp=line.tax_rate_bp,
                # The kitchen's station is no business of the customer's receipt.
                components=[
                    LineComponent.model_validate({k: v for k, v in component.items() if k != "station"})
                    for component in (line.components if line.display_components is None else line.display_components)
                ],
            )
            for line in order.lines
        ],
        taxes=[RateTaxView.model_validate(rate) for rate in order.taxes],
        subtotal=order.subtotal,
        tax=order.tax,
        total=order.total,
        paid_at=order.paid_at,
        payment=None
        if payment is None
        else ReceiptPayment(
            method=payment.method,
            amount=payment.amount,
            provider_ref=payment.provider_ref,
            approved_at=payment.approved_at,
        ),
        refunded_at=order.refunded_at,
    )


async def order_receipt(session: AsyncSession, order: AnyOrder) -> ReceiptView:
    """The receipt of `order`, which the caller may see: its payment and branch read; `conflict` naming the order's
    status while it has not been paid (awaiting payment, or cancelled unpaid)."""
    if order.status not in RECEIPTED or order.paid_at is None:
        raise ApiError(
            "conflict",
            f"order {order.id} is {order.status.value}: only a paid order has a receipt",
            {"order_id": order.id, "status": order.status.value},
        )
    branch = await session.get(Branch, order.branch_id)
    if branch is None:  # orders' branch_id is a foreign key that refuses the branch's delete
        raise RuntimeError(f"order {order.id} has no branch {order.branch_id}")
    return build_receipt(order, await paying_payment(session, order.id), branch)


async def paying_payment(session: AsyncSession, order_id: int) -> Payment | None:
    """The payment that paid the order: its approved one, or once refunded the first approved of those refunded.

    A payment approved after the order was paid (or cancelled) became `needs_refund`, and may have been refunded
    since: it was approved later than the one that paid, so the earliest approval is the paying one.
    """
    rows = await session.scalars(
        select(Payment)
        .where(
            Payment.order_id == order_id,
            Payment.status.in_((PaymentStatus.APPROVED, PaymentStatus.REFUNDED)),
            Payment.approved_at.is_not(None),
        )
        .order_by(Payment.approved_at, Payment.id)
    )
    payments = list(rows)
    approved = [payment for payment in payments if payment.status == PaymentStatus.APPROVED]
    return next(iter(approved or payments), None)
