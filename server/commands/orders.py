"""Order commands: a kiosk places and cancels orders; staff mark them paid at the counter.

`order.place` is one transaction in three steps: validate (reprice the cart, compare with
what the kiosk showed), reserve (stock for every line), create (freeze the lines, take the
branch's next number for its business day, set the payment deadline). Anything short or
changed leaves nothing reserved and the cart open.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from pydantic import Field

from channels import names
from persistence import stock
from persistence.enums import DeviceKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.order_records import OrderRecord
from persistence.tables import Payment
from server.auth.permissions import Permission
from server.auth.principals import Principal
from server.commands.carts import open_cart, out_of_stock, require_offered
from server.commands.router import CommandContext, CommandRegistry, Who
from server.domain.business_day import business_date
from server.domain.order_states import OrderAction
from server.errors import ApiError
from server.orders import order_inserts
from server.orders.cart_pricing import PricedCart, PricedLine, price_cart, quantities
from server.orders.cart_records import CartRecord
from server.orders.line_stations import line_stations
from server.orders.order_changes import conflict, lock_order, mark_order_paid, move, payment_in_flight
from server.orders.order_inserts import NewLine
from server.payloads.menu import stock_changed
from server.payloads.order import OrderView, announce, order_data
from server.payloads.taxes import stored_taxes
from server.validation import INT32_MAX, Input, RowId

registry = CommandRegistry()


class PlaceOrder(Input):
    """`order.place`: the cart, and the total the kiosk showed (checked when given)."""

    cart_id: RowId
    expected_total: int | None = Field(default=None, ge=0, le=INT32_MAX, strict=True)


class OrderRef(Input):
    """An order to act on."""

    order_id: RowId


def order_scope(principal: Principal) -> dict[str, Any]:
    """The orders `principal` may act on, as the values their columns must hold: a kiosk its own, a kitchen display
    and a user their branch's, a chain-wide user any ({})."""
    if principal.is_chain_wide:
        return {}
    if principal.device_kind == DeviceKind.KIOSK:
        return {"device_id": principal.id}
    return {"branch_id": principal.branch_id}


async def load_order(ctx: CommandContext, order_id: int) -> OrderRecord:
    """The order if the sender may act on it (`order_scope`), locked; `not_found` otherwise."""
    order = await lock_order(ctx.session, order_id)
    # Another branch's order is `not_found` like one that does not exist: `forbidden` would say it exists.
    if order is None or any(getattr(order, column) != value for column, value in order_scope(ctx.principal).items()):
        raise ApiError("not_found", f"no order {order_id}", {"order_id": order_id})
    return order


@registry.command(
    "order.place",
    PlaceOrder,
    who=Who(devices=frozenset({DeviceKind.KIOSK})),
    summary="Turn a cart into an order awaiting payment, reserving its stock",
    reply=OrderView,
    errors=("not_found", "conflict", "invalid", "out_of_stock", "price_changed"),
)
async def place_order(ctx: CommandContext, data: PlaceOrder) -> dict[str, Any]:
    """Place the cart as an order: repriced, stock reserved, numbered, `awaiting_payment` until paid or timed out."""
    # Locked without a change: a refusal may show the cart as it is (`price_changed`); `_create` changes it.
    cart = await open_cart(ctx, data.cart_id, change=False)
    priced = await _validate(ctx, cart, data.expected_total)
    reservation = await _reserve(ctx, cart, priced)
    order = await _create(ctx, cart, priced)
    for level in reservation.changed:
        ctx.emit(
            names.branch_menu(cart.branch_id),
            "stock.changed",
            stock_changed(cart.branch_id, level.item_id, level.available, level.stock),
        )
    announce(ctx.emit, order)
    return order_data(order, customer=True)


async def _validate(ctx: CommandContext, cart: CartRecord, expected_total: int | None) -> PricedCart:
    """The cart repriced; refused when empty, when a line cannot be ordered, or when the total is not the kiosk's."""
    if not cart.lines:
        raise ApiError("invalid", "the cart is empty", {"cart_id": cart.id})
    # The branch may have stopped offering the cart's mode since it was chosen: the customer chooses again.
    require_offered(cart, cart.service_mode)
    priced = await price_cart(ctx.session, cart, now=ctx.menu_now())

    # Lines that cannot be ordered as they are: gone or off the menu first, then bad options.
    gone = [line for line in priced.problems if line.problem and line.problem.code in ("removed", "unavailable")]
    if gone:
        raise out_of_stock([{**_gone(line), "requested": line.line.qty, "left": 0} for line in gone])
    broken = [line for line in priced.problems if line.problem and line.problem.code == "options"]
    if broken:
        errors = [
            {"field": "lines", "line_id": line.line.id, "message": line.problem.message}
            for line in broken
            if line.problem
        ]
        raise ApiError("invalid", "some lines' options no longer fit their items", {"errors": errors})

    totals = priced.totals
    if expected_total is not None and expected_total != totals.total:
        details = {
            "expected_total": expected_total,
            "cart": priced.data(ctx.settings.cart_idle_timeout),
            **{"subtotal": totals.subtotal, "tax": totals.tax, "total": totals.total},
        }
        raise ApiError("price_changed", f"the total is now {totals.total}, not {expected_total}", details)
    return priced


def _gone(line: PricedLine) -> dict[str, Any]:
    """A line that cannot be sold now, with why: `reason` "removed", "unavailable" (86'd) or "daypart" (outside the
    `window` of its daypart, even if it was inside when the line was added). A combo's component is named as itself,
    with the combo as `combo_item_id`."""
    problem = line.problem
    gone: dict[str, Any] = {"item_id": line.line.item_id, "name": line.name}
    if problem is not None and problem.component_id is not None:
        component = next(c for c in line.components if c.component.choice.item_id == problem.component_id)
        gone = {"item_id": problem.component_id, "name": component.name, "combo_item_id": line.line.item_id}
    if problem is not None and problem.window is not None:
        return {**gone, "reason": "daypart", "window": problem.window.data()}
    return {**gone, "reason": problem.code if problem is not None else "unavailable"}


async def _reserve(ctx: CommandContext, cart: CartRecord, priced: PricedCart) -> stock.Reservation:
    """Stock taken for every line at once; `out_of_stock` naming each short item, which rolls the order back."""
    # Reserved against the levels pricing has just read in this transaction.
    levels = {o.item_id: stock.Level(o.item_id, o.available, o.stock) for o in priced.offers.values() if o.offered}
    reservation = await stock.reserve(ctx.session, cart.branch_id, quantities(cart.lines), levels)
    if reservation.short:
        # A combo's components are named as themselves: they are what ran out.
        named = {o.item_id: o.name for o in priced.offers.values()}
        raise out_of_stock(
            [
                {"item_id": s.item_id, "name": named[s.item_id], "requested": s.requested, "left": s.left}
                for s in reservation.short
            ]
        )
    return reservation


async def _create(ctx: CommandContext, cart: CartRecord, priced: PricedCart) -> OrderRecord:
    """The cart ordered (and announced), and the order: its frozen lines, its number, its payment deadline."""
    now = ctx.now()
    totals = priced.totals
    order = {
        "branch_id": cart.branch_id,
        "device_id": cart.device_id,
        "cart_id": cart.id,
        "customer_id": cart.customer_id,
        "customer_name": cart.customer_name,
        "status": OrderStatus.AWAITING_PAYMENT,
        "currency": cart.currency,
        "service_mode": cart.service_mode,
        "locale": cart.display_locale,
        "subtotal": totals.subtotal,
        "tax": totals.tax,
        "total": totals.total,
        "taxes": stored_taxes(totals),
        **dict.fromkeys(("paid_at", "started_at", "ready_at", "completed_at", "cancelled_at", "refunded_at"), None),
        "cancel_reason": None,
    }
    station_of = await line_stations(ctx.session, cart, priced)
    # The ticket's names in the kitchen's locale, the customer's in the cart's (as priced); the customer's are kept
    # only where they differ (null: as the kitchen's).
    kitchen = cart.chain(kitchen=True)
    lines = []
    for line in priced.lines:
        name, options, components = line.named_in(kitchen)
        shown, shown_components = line.options(), line.component_data()
        lines.append(
            NewLine(
                line.line.item_id,
                name,
                line.line.qty,
                line.unit_price,
                options,
                line.line_total,
                line.tax_rate_bp,
                line.line.note,
                [component | {"station": station_of(component["item_id"])} for component in components],
                station_of(line.line.item_id),
                None if line.name == name else line.name,
                None if shown == options else shown,
                None if shown_components == components else shown_components,
            )
        )
    due = now + timedelta(seconds=ctx.settings.ORDER_PAYMENT_TIMEOUT_S)
    placed = await order_inserts.place(ctx.session, cart, order, lines, business_date(now, cart.timezone), now, due)
    # The kiosk's cart is done: priced above, so it is announced from that pricing, not priced again.
    ctx.emit(
        names.device(cart.device_id),
        "cart.updated",
        replace(priced, cart=placed.cart).data(ctx.settings.cart_idle_timeout),
    )
    return placed.order


@registry.command(
    "order.cancel",
    OrderRef,
    who=Who(devices=frozenset({DeviceKind.KIOSK})),
    summary="Cancel an unpaid order and give its stock back",
    reply=OrderView,
    errors=("not_found", "conflict"),
)
async def cancel_order(ctx: CommandContext, data: OrderRef) -> dict[str, Any]:
    """Cancel one of this kiosk's orders while it awaits payment (`conflict` once paid, or with a payment in flight)."""
    order = await load_order(ctx, data.order_id)
    in_flight = await payment_in_flight(ctx.session, order.id)
    if in_flight is not None:
        raise conflict(order, f"payment {in_flight} is in progress; cancel it first")
    cancelled = await move(ctx.session, order, OrderAction.CANCEL, ctx.emit, reason="cancelled_by_kiosk")
    return order_data(cancelled, customer=True)


@registry.command(
    "order.mark_paid",
    OrderRef,
    who=Who(permission=Permission.ORDERS_WRITE),
    summary="Record an order as paid in cash at the counter",
    reply=OrderView,
    errors=("not_found", "forbidden", "conflict"),
)
async def mark_paid(ctx: CommandContext, data: OrderRef) -> dict[str, Any]:
    """Take the order's total in cash: a cash payment is recorded as approved and the order goes to the kitchen."""
    order = await load_order(ctx, data.order_id)
    in_flight = await payment_in_flight(ctx.session, order.id)
    if in_flight is not None:
        raise conflict(order, f"payment {in_flight} is in progress at a terminal")
    now = ctx.now()
    if order.total > 0:
        ctx.session.add(
            Payment(
                order_id=order.id,
                branch_id=order.branch_id,
                method=PaymentMethod.CASH,
                amount=order.total,
                currency=order.currency,
                status=PaymentStatus.APPROVED,
                idempotency_key=str(uuid.uuid4()),
                approved_at=now,
                finished_at=now,
            )
        )
    return order_data(await mark_order_paid(ctx.session, order, ctx.emit, ctx.settings))
