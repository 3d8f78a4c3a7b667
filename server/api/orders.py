"""REST routes: orders and their receipts, read-only (orders are placed and moved on over the device protocol)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import select

from persistence.enums import OrderStatus
from persistence.tables import Order, Payment
from server.api.fields import IsoDate, IsoDatetime
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.payments import PaymentOut
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.errors import not_found
from server.payloads.moment import Moment
from server.payloads.order import AnyOrder, OrderView
from server.payloads.receipt import ReceiptView, order_receipt
from server.validation import RowId

router = ApiRouter("orders")


class OrderOut(OrderView):
    """An order with its lines as devices see it, plus the known customer it was placed for and its last change."""

    customer_id: int | None
    updated_at: Moment


class OrderDetailOut(OrderOut):
    """An order with its lines and every payment attempt, oldest first."""

    payments: list[PaymentOut]


class OrderQuery(PageQuery):
    """Filters of the order list."""

    branch_id: RowId | None = Field(default=None, description="only orders of this branch")
    status: OrderStatus | None = None
    business_date: IsoDate | None = Field(default=None, description="the branch's business day (its own time zone)")
    device_id: RowId | None = Field(default=None, description="only orders placed at this kiosk")
    number: RowId | None = Field(default=None, description="the order number called out to the customer")
    created_from: IsoDatetime | None = Field(default=None, description="created at or after (with a time zone)")
    created_to: IsoDatetime | None = Field(default=None, description="created before (with a time zone)")


@router.get(
    "/orders",
    "List orders",
    permission=Permission.ORDERS_READ,
    query=OrderQuery,
    response=Page[OrderOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_orders(call: Call[None, OrderQuery]) -> Page[OrderOut]:
    """Orders of the branches the caller may see, newest first, with their lines."""
    query = call.query
    statement = select(Order).order_by(Order.created_at.desc(), Order.id.desc())
    if query.branch_id is not None:
        call.principal.require_branch(query.branch_id)
        statement = statement.where(Order.branch_id == query.branch_id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(Order.branch_id == scope)
    for column, value in (
        (Order.status, query.status),
        (Order.business_date, query.business_date),
        (Order.device_id, query.device_id),
        (Order.number, query.number),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if query.created_from is not None:
        statement = statement.where(Order.created_at >= query.created_from)
    if query.created_to is not None:
        statement = statement.where(Order.created_at < query.created_to)
    rows, total = await fetch_page(call.session, statement, query)
    return Page[OrderOut](
        items=[OrderOut.model_validate(row) for row in rows], total=total, limit=query.limit, offset=query.offset
    )


@router.get(
    "/orders/{order_id}",
    "Read an order",
    permission=Permission.ORDERS_READ,
    response=OrderDetailOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_order(call: Call[None, None]) -> OrderDetailOut:
    """One order of a branch the caller may see, with its lines and its payments."""
    order_id = call.path_int("order_id")
    order = await call.session.get(Order, order_id)
    if order is None:
        raise not_found("order", order_id)
    call.require_visible("order", order_id, order.branch_id)
    return await order_detail(call, order)


@router.get(
    "/orders/{order_id}/receipt",
    "Read a paid order's receipt",
    permission=Permission.ORDERS_READ,
    response=ReceiptView,
    errors=("unauthorized", "forbidden", "not_found", "conflict"),
)
async def read_receipt(call: Call[None, None]) -> ReceiptView:
    """The receipt of a paid order of a branch the caller may see, as its kiosk gets it (`order.receipt`).

    `conflict` naming the order's status while it awaits payment or was cancelled unpaid.
    """
    order_id = call.path_int("order_id")
    order = await call.session.get(Order, order_id)
    if order is None:
        raise not_found("order", order_id)
    call.require_visible("order", order_id, order.branch_id)
    return await order_receipt(call.session, order)


async def order_detail(call: Call[Any, Any], order: AnyOrder) -> OrderDetailOut:
    """The order with its lines and its payments, as the REST routes answer it."""
    payments = await call.session.scalars(select(Payment).where(Payment.order_id == order.id).order_by(Payment.id))
    return OrderDetailOut(
        **OrderOut.model_validate(order).model_dump(),
        payments=[PaymentOut.model_validate(payment) for payment in payments],
    )
