"""The order state machine of PROTOCOL.md: which action moves an order from which state to which.

awaiting_payment --pay--> paid --start--> preparing --ready--> ready --complete--> completed
awaiting_payment --cancel--> cancelled        ready --recall--> preparing
paid --refund--> refunded
"""

from __future__ import annotations

import enum

from persistence.enums import OrderStatus


class OrderAction(enum.StrEnum):
    """What can happen to an order."""

    PAY = "pay"
    START = "start"
    READY = "ready"
    RECALL = "recall"
    COMPLETE = "complete"
    CANCEL = "cancel"
    REFUND = "refund"


TRANSITIONS: dict[tuple[OrderStatus, OrderAction], OrderStatus] = {
    (OrderStatus.AWAITING_PAYMENT, OrderAction.PAY): OrderStatus.PAID,
    (OrderStatus.AWAITING_PAYMENT, OrderAction.CANCEL): OrderStatus.CANCELLED,
    (OrderStatus.PAID, OrderAction.START): OrderStatus.PREPARING,
    (OrderStatus.PAID, OrderAction.REFUND): OrderStatus.REFUNDED,
    (OrderStatus.PREPARING, OrderAction.READY): OrderStatus.READY,
    (OrderStatus.READY, OrderAction.RECALL): OrderStatus.PREPARING,
    (OrderStatus.READY, OrderAction.COMPLETE): OrderStatus.COMPLETED,
}


# Every action starts from exactly one state.
SOURCE: dict[OrderAction, OrderStatus] = {action: status for status, action in TRANSITIONS}
assert len(SOURCE) == len(TRANSITIONS), "an action with two source states"


class IllegalTransition(ValueError):
    """An action the order's current state does not allow."""

    def __init__(self, status: OrderStatus, action: OrderAction) -> None:
        allowed = sorted(a.value for (s, a) in TRANSITIONS if s == status)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else "; it is final"
        super().__init__(f"cannot {action.value} an order that is {status.value}{hint}")
        self.status = status
        self.action = action


def next_status(status: OrderStatus, action: OrderAction) -> OrderStatus:
    """The state `action` moves an order in `status` to; `IllegalTransition` when it may not."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise IllegalTransition(status, action) from None
