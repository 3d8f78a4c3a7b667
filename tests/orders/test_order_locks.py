"""Reading and locking an order (server/orders/order_changes.py): whether a payment is in flight, and
`lock_order`, which waits for another transaction holding the order or passes over it if only a free one will do.
"""

from __future__ import annotations

import pytest

from persistence.database import Database
from persistence.enums import PaymentMethod, PaymentStatus
from persistence.tables import Order
from server.orders.order_changes import lock_order, payment_in_flight
from tests.locks import waited_for_or_passed_over
from tests.orders.order_rows import add_counter, add_order, add_payment
from tests.orders.payment_helpers import A

# Bounds every wait on another transaction, so that a hang fails the test instead of stalling the suite.
TIMEOUT_S = 30


@pytest.mark.parametrize("status", list(PaymentStatus))
async def test_a_payment_is_in_flight_while_pending_or_processing(db: Database, status: PaymentStatus) -> None:
    """`payment_in_flight` names the order's pending or processing payment, and no final one."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, status)
    in_flight = status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING)
    async with db.session() as session:
        assert await payment_in_flight(session, order_id) == (payment_id if in_flight else None)


async def test_another_orders_payment_in_flight_is_not_this_orders(db: Database) -> None:
    """Only the order's own payments count."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    other_id = await add_order(db, counter, A)
    await add_payment(db, counter, other_id, PaymentStatus.PENDING, method=PaymentMethod.GATEWAY)
    await add_payment(db, counter, order_id, PaymentStatus.DECLINED)
    async with db.session() as session:
        assert await payment_in_flight(session, order_id) is None


async def test_locking_reads_the_order_with_its_lines(db: Database) -> None:
    """`lock_order` gives the order with its lines in order; an unknown id is None."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A, [(counter.fries, 2), (counter.cola, 1)])
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        assert (order.id, [(line.item_id, line.qty) for line in order.lines]) == (
            order_id,
            [(counter.fries, 2), (counter.cola, 1)],
        )
        assert await lock_order(session, order_id + 1000) is None


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_an_order_another_transaction_holds_is_waited_for_or_passed_over_if_free(db: Database) -> None:
    """While another transaction holds the order, `lock_order` waits for it, and with `if_free` answers None at
    once (the workers pass over it)."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    await waited_for_or_passed_over(db, Order, order_id, lock_order, TIMEOUT_S)
