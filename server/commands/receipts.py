"""Receipt command: the kiosk that placed a paid order reads its receipt (server/payloads/receipt.py) to print it."""

from __future__ import annotations

from persistence.enums import DeviceKind
from persistence.tables import Order
from server.commands.orders import OrderRef, order_scope
from server.commands.router import CommandContext, CommandRegistry, Who
from server.errors import ApiError
from server.payloads.receipt import ReceiptView, order_receipt

registry = CommandRegistry()


@registry.command(
    "order.receipt",
    OrderRef,
    who=Who(devices=frozenset({DeviceKind.KIOSK})),
    summary="Read a paid order's receipt",
    reply=ReceiptView,
    errors=("not_found", "conflict"),
    read_only=True,
)
async def receipt(ctx: CommandContext, data: OrderRef) -> ReceiptView:
    """The receipt of one of this kiosk's orders once paid: lines, tax per rate, totals, payment, branch.

    `conflict` naming the order's status while it awaits payment or was cancelled unpaid.
    """
    # Read, not locked: a receipt changes nothing, and a move of the order meanwhile is the next read's.
    order = await ctx.session.get(Order, data.order_id)
    # Another kiosk's order is `not_found` like one that does not exist, as for every kiosk order command.
    if order is None or any(getattr(order, column) != value for column, value in order_scope(ctx.principal).items()):
        raise ApiError("not_found", f"no order {data.order_id}", {"order_id": data.order_id})
    return await order_receipt(ctx.session, order)
