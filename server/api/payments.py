"""REST routes: payments, read-only (they are taken over the device protocol).

Staff use the list to find payments that need a hand, e.g. `status=needs_refund`: a
terminal approved them after the order could no longer be paid.
"""

from __future__ import annotations

from pydantic import Field
from sqlalchemy import select

from persistence.enums import PaymentMethod, PaymentStatus
from persistence.tables import Payment
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.errors import not_found
from server.payloads.moment import Moment
from server.payloads.payment import PaymentView
from server.validation import RowId

router = ApiRouter("payments")

# Ids are 32-bit integers on PostgreSQL; a bigger one in a filter is `invalid`, not a database error.


class PaymentOut(PaymentView):
    """One attempt to take an order's money, as devices see it, and when its row last changed."""

    updated_at: Moment


class PaymentQuery(PageQuery):
    """Filters of the payment list."""

    branch_id: RowId | None = Field(default=None, description="only payments of this branch")
    status: PaymentStatus | None = Field(default=None, description="e.g. needs_refund")
    order_id: RowId | None = Field(default=None, description="only payments of this order")
    method: PaymentMethod | None = None


@router.get(
    "/payments",
    "List payments",
    permission=Permission.PAYMENTS_READ,
    query=PaymentQuery,
    response=Page[PaymentOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_payments(call: Call[None, PaymentQuery]) -> Page[PaymentOut]:
    """Payments of the branches the caller may see, newest first."""
    query = call.query
    statement = select(Payment).order_by(Payment.created_at.desc(), Payment.id.desc())
    if query.branch_id is not None:
        call.principal.require_branch(query.branch_id)
        statement = statement.where(Payment.branch_id == query.branch_id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(Payment.branch_id == scope)
    if query.status is not None:
        statement = statement.where(Payment.status == query.status)
    if query.order_id is not None:
        statement = statement.where(Payment.order_id == query.order_id)
    if query.method is not None:
        statement = statement.where(Payment.method == query.method)
    rows, total = await fetch_page(call.session, statement, query)
    return Page[PaymentOut](
        items=[PaymentOut.model_validate(row) for row in rows], total=total, limit=query.limit, offset=query.offset
    )


@router.get(
    "/payments/{payment_id}",
    "Read a payment",
    permission=Permission.PAYMENTS_READ,
    response=PaymentOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_payment(call: Call[None, None]) -> PaymentOut:
    """One payment of a branch the caller may see."""
    payment_id = call.path_int("payment_id")
    payment = await call.session.get(Payment, payment_id)
    if payment is None:
        raise not_found("payment", payment_id)
    call.require_visible("payment", payment_id, payment.branch_id)
    return PaymentOut.model_validate(payment)
