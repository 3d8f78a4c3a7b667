"""What the tests of order and payment changes share: status shorthands, who hears a payment's event, and
a check that a payment is still as it was written.
"""

from __future__ import annotations

from channels import names
from persistence.database import Database
from persistence.enums import OrderStatus, PaymentStatus
from tests.orders.order_rows import LONG_AGO, Counter, payment_row

A = OrderStatus.AWAITING_PAYMENT
P = PaymentStatus


def _payment_audience(counter: Counter, event: str, *, terminal: bool = True) -> list[tuple[str, str]]:
    """Staff, the kiosk and (for a terminal payment) the terminal hear `event`."""
    heard = [(names.branch_orders(counter.branch_id), event), (names.device(counter.kiosk_id), event)]
    if terminal:
        heard.append((names.device(counter.terminal_id), event))
    return heard


async def _unchanged(db: Database, payment_id: int, status: PaymentStatus) -> None:
    """The payment is still as `add_payment` wrote it."""
    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.message, stored.updated_at) == (status, "as it was", LONG_AGO)
