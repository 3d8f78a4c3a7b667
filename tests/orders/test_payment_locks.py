"""Locking a payment (`lock_payment` in persistence/payments.py): it is read, waited for while another
transaction holds it, or passed over when only a free one will do.
"""

from __future__ import annotations

import pytest

from persistence.database import Database
from persistence.payments import lock_payment
from persistence.tables import Payment
from tests.locks import waited_for_or_passed_over
from tests.orders.order_rows import add_counter, add_order, add_payment
from tests.orders.payment_helpers import A, P

# Bounds every wait on another transaction, so that a hang fails the test instead of stalling the suite.
TIMEOUT_S = 30


async def test_locking_reads_the_payment(db: Database) -> None:
    """`lock_payment` gives the payment; an unknown id is None."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PENDING)
    async with db.session() as session:
        payment = await lock_payment(session, payment_id)
        assert payment is not None and (payment.id, payment.order_id) == (payment_id, order_id)
        assert await lock_payment(session, payment_id + 1000) is None


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_payment_another_transaction_holds_is_waited_for_or_passed_over_if_free(db: Database) -> None:
    """While another transaction holds the payment (a result being recorded), `lock_payment` waits for it, and
    with `if_free` answers None at once (the deadline worker passes over it)."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PENDING)
    await waited_for_or_passed_over(db, Payment, payment_id, lock_payment, TIMEOUT_S)
