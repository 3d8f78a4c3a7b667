"""Marking an order paid (`mark_order_paid` in server/orders/order_changes.py): it is paid and queued for
the POS when there is one, and a second time is `conflict` and queues nothing.
"""

from __future__ import annotations

import pytest

from channels import names
from persistence.database import Database
from persistence.enums import DeliveryStatus, OrderStatus
from server.errors import ApiError
from server.orders.order_changes import lock_order, mark_order_paid
from tests.orders.order_rows import Heard, add_counter, add_order, order_row, pos_queue, settings
from tests.orders.payment_helpers import A


@pytest.mark.parametrize("pos", [True, False], ids=["with-pos", "without-pos"])
async def test_marking_an_order_paid_pays_it_and_queues_it_for_the_pos_when_there_is_one(
    db: Database, pos: bool
) -> None:
    """The order is paid with the events of a payment; with `POS_API_URL` set it is queued once, not yet tried."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    heard = Heard()
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        assert await mark_order_paid(session, order, heard, settings(pos=pos)) is order
    assert (await order_row(db, order_id)).status == OrderStatus.PAID
    assert (names.branch_kitchen(counter.branch_id), "order.queued") in heard.pairs()
    assert await pos_queue(db) == ([(order_id, DeliveryStatus.PENDING, 0)] if pos else [])


async def test_marking_an_order_paid_twice_is_conflict_and_queues_nothing(db: Database) -> None:
    """An order already paid is `conflict`; nothing goes to the POS."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    heard = Heard()
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        with pytest.raises(ApiError) as caught:
            await mark_order_paid(session, order, heard, settings(pos=True))
    assert (caught.value.code, caught.value.details) == ("conflict", {"order_id": order_id, "status": "paid"})
    assert heard.events == []
    assert await pos_queue(db) == []
