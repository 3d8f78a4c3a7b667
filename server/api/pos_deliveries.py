"""REST routes: the pushes of paid orders to the POS, to watch them and to send a failed one again.

A delivery is `pending` while the server keeps trying (`attempts`, `next_attempt_at`,
`last_error` tell how it goes), `delivered` once the POS answered 2xx, and `failed` when
the POS refused it or the retry budget ran out. `?status=failed` is the list to watch;
an admin retries one after fixing the cause, with the same idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import pos_deliveries
from persistence.base import utcnow
from persistence.enums import DeliveryStatus
from persistence.tables import Order, PosDelivery
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.auth.principals import Principal
from server.errors import ApiError, not_found
from server.validation import RowId

router = ApiRouter("pos")


class PosDeliveryOut(BaseModel):
    """One paid order's push to the POS."""

    id: int
    order_id: int
    branch_id: int
    idempotency_key: str = Field(description="sent with every attempt, as the `Idempotency-Key` header and in the body")
    status: DeliveryStatus
    attempts: int = Field(description="attempts made since the order was paid or last retried by an admin")
    next_attempt_at: datetime = Field(description="when a pending delivery is tried next")
    last_error: str | None = Field(description="what went wrong on the latest failed attempt")
    delivered_at: datetime | None
    created_at: datetime


class PosDeliveryQuery(PageQuery):
    """Filters of the delivery list."""

    status: DeliveryStatus | None = Field(default=None, description="e.g. failed")
    branch_id: RowId | None = Field(default=None, description="only orders of this branch")
    order_id: RowId | None = Field(default=None, description="only this order's delivery")


def _out(delivery: PosDelivery, branch_id: int) -> PosDeliveryOut:
    return PosDeliveryOut(
        id=delivery.id,
        order_id=delivery.order_id,
        branch_id=branch_id,
        idempotency_key=delivery.idempotency_key,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


async def _branches(session: AsyncSession, deliveries: Sequence[PosDelivery]) -> dict[int, int]:
    """The branch of each delivery's order, by order id."""
    if not deliveries:
        return {}
    ids = {delivery.order_id for delivery in deliveries}
    rows = await session.execute(select(Order.id, Order.branch_id).where(Order.id.in_(ids)))
    return {order_id: branch_id for order_id, branch_id in rows}


async def _load(call: Call[None, None], *, for_update: bool = False) -> tuple[PosDelivery, int]:
    """The delivery of the path and its order's branch, if the caller may see that branch."""
    delivery_id = call.path_int("delivery_id")
    delivery = await call.session.get(PosDelivery, delivery_id, with_for_update=for_update)
    if delivery is None:
        raise not_found("pos_delivery", delivery_id)
    branch_id = await call.session.scalar(select(Order.branch_id).where(Order.id == delivery.order_id))
    if branch_id is None:  # the order's deletion cascades to its delivery: only a race with it gets here
        raise not_found("pos_delivery", delivery_id)
    call.require_visible("pos_delivery", delivery_id, branch_id)
    return delivery, branch_id


def require_admin(principal: Principal) -> None:
    """Raise `forbidden` unless the caller is a chain-wide user whose role grants every permission.

    No permission of its own guards the POS yet: resending is a chain-wide operation on
    an outside system, which by default only the admin role (`*`) may take on.
    """
    if not (principal.is_chain_wide and principal.holds_all(list(Permission))):
        raise ApiError("forbidden", "only a chain-wide admin may retry a POS delivery", {"permission": "*"})


@router.get(
    "/pos-deliveries",
    "List POS deliveries",
    permission=Permission.ORDERS_READ,
    query=PosDeliveryQuery,
    response=Page[PosDeliveryOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_pos_deliveries(call: Call[None, PosDeliveryQuery]) -> Page[PosDeliveryOut]:
    """Pushes of paid orders to the POS, for the branches the caller may see, newest first."""
    query = call.query
    statement = (
        select(PosDelivery)
        .join(Order, Order.id == PosDelivery.order_id)
        .order_by(PosDelivery.created_at.desc(), PosDelivery.id.desc())
    )
    if query.branch_id is not None:
        call.principal.require_branch(query.branch_id)
        statement = statement.where(Order.branch_id == query.branch_id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(Order.branch_id == scope)
    if query.status is not None:
        statement = statement.where(PosDelivery.status == query.status)
    if query.order_id is not None:
        statement = statement.where(PosDelivery.order_id == query.order_id)
    rows, total = await fetch_page(call.session, statement, query)
    branches = await _branches(call.session, rows)
    return Page[PosDeliveryOut](
        items=[_out(row, branches[row.order_id]) for row in rows], total=total, limit=query.limit, offset=query.offset
    )


@router.get(
    "/pos-deliveries/{delivery_id}",
    "Read a POS delivery",
    permission=Permission.ORDERS_READ,
    response=PosDeliveryOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_pos_delivery(call: Call[None, None]) -> PosDeliveryOut:
    """One push of a paid order to the POS, of a branch the caller may see."""
    delivery, branch_id = await _load(call)
    return _out(delivery, branch_id)


@router.post(
    "/pos-deliveries/{delivery_id}/retry",
    "Retry a failed POS delivery",
    permission=Permission.ORDERS_WRITE,
    response=PosDeliveryOut,
    errors=("unauthorized", "forbidden", "not_found", "conflict"),
)
async def retry_pos_delivery(call: Call[None, None]) -> PosDeliveryOut:
    """Admins only (chain-wide, every permission): push a failed delivery again now, fresh budget, same key."""
    require_admin(call.principal)
    delivery, branch_id = await _load(call, for_update=True)
    if delivery.status != DeliveryStatus.FAILED:
        raise ApiError(
            "conflict",
            f"only a failed delivery can be retried; this one is {delivery.status.value}",
            {"id": delivery.id, "status": delivery.status.value},
        )
    retried = await pos_deliveries.retry(call.session, delivery.id, utcnow())
    if retried is None:  # cannot happen while the row is locked; SQLite's single writer serialises too
        raise ApiError("conflict", "the delivery changed meanwhile; read it again", {"id": delivery.id})
    return _out(retried, branch_id)
