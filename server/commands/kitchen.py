"""Kitchen commands: displays move paid orders through preparing and ready to completed (or recall them)."""

from __future__ import annotations

from typing import Any

from persistence.enums import DeviceKind
from server.auth.permissions import Permission
from server.commands.orders import OrderRef, load_order, order_scope
from server.commands.router import CommandContext, CommandRegistry, Who
from server.domain.order_states import OrderAction
from server.orders.order_changes import advance, move
from server.payloads.order import OrderView, order_data

registry = CommandRegistry()

KITCHEN = Who(devices=frozenset({DeviceKind.KITCHEN_DISPLAY}), permission=Permission.ORDERS_WRITE)

_COMMANDS = (
    ("order.start", OrderAction.START, "Start preparing a paid order"),
    ("order.ready", OrderAction.READY, "Mark an order ready for pick-up"),
    ("order.recall", OrderAction.RECALL, "Take a ready order back to preparing"),
    ("order.complete", OrderAction.COMPLETE, "Mark a ready order picked up"),
)


def _register(name: str, action: OrderAction, summary: str) -> None:
    async def handler(ctx: CommandContext, data: OrderRef) -> dict[str, Any]:
        order = await advance(ctx.session, data.order_id, action, ctx.emit, scope=order_scope(ctx.principal))
        if order is None:
            # Not where the action starts, or not the sender's: read it to say which (or to move it, if it got there).
            order = await move(ctx.session, await load_order(ctx, data.order_id), action, ctx.emit)
        return order_data(order)

    handler.__doc__ = f'{summary}; `conflict` when the order\'s state does not allow it (PROTOCOL.md "States").'
    handler.__name__ = name.replace(".", "_")
    registry.command(name, OrderRef, who=KITCHEN, summary=summary, reply=OrderView, errors=("not_found", "conflict"))(
        handler
    )


for _name, _action, _summary in _COMMANDS:
    _register(_name, _action, _summary)
