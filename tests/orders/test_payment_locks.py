"""Locking a payment (`lock_payment` in persistence/payments.py): it is read, waited for while another
transaction holds it, or passed over when only a free one will do.
"""

from __future__ import annotations

import asyncio

import pytest

from persistence.database import Database
from persistence.payments import lock_payment
from persistence.tables import Payment
from tests.locks import until_blocked_or_done
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


async def _lock_in_own_transaction(db: Database, payment_id: int) -> int | None:
    async with db.session() as session:
        payment = await lock_payment(session, payment_id)
        return None if payment is None else payment.id


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_payment_another_transaction_holds_is_waited_for_or_passed_over_if_free(db: Database) -> None:
    """While another transaction holds the payment (a result being recorded), `lock_payment` waits for it, and
    with `if_free` answers None at once (the deadline worker passes over it)."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, P.PENDING)
    async with db.session() as holder:
        await holder.get(Payment, payment_id, with_for_update=True)
        async with db.session() as other:
            assert await asyncio.wait_for(lock_payment(other, payment_id, if_free=True), TIMEOUT_S) is None
        waiting = asyncio.create_task(_lock_in_own_transaction(db, payment_id))
        await until_blocked_or_done(db, waiting, TIMEOUT_S)
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, TIMEOUT_S) == payment_id
