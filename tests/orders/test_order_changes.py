"""Moving an order through its states (server/orders/order_changes.py), on SQLite and PostgreSQL.

Each move is one conditional UPDATE that stamps the moment reached and emits the move's
events; a move the state does not allow, or one another transaction beat, is `conflict`
and changes nothing; cancelling gives the stock back; paying or cancelling ends the
order's payment deadline.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import update

from channels import names
from persistence.base import rfc3339, table, utcnow
from persistence.database import Database
from persistence.enums import DeadlineKind, OrderStatus
from persistence.tables import Order
from server.domain.order_states import OrderAction
from server.errors import ApiError
from server.orders.order_changes import give_back_stock, lock_order, move
from tests.orders.order_rows import (
    FRIES_LEFT,
    LONG_AGO,
    REACHED,
    Counter,
    Heard,
    add_counter,
    add_order,
    deadline_done_at,
    moments,
    open_deadline,
    order_row,
)
from tests.orders.payment_helpers import A
from tests.rows import add_item, stock_of

# Every move the state machine allows: where from, the action, where to, and who hears what. Keys name the
# audience (the branch's staff, the ordering kiosk, the kitchen, the board); the board's value is the column the
# order moves to (None: off the board), and a board that is not named hears nothing.
MOVES: list[tuple[OrderStatus, OrderAction, OrderStatus, dict[str, str | None]]] = [
    (
        A,
        OrderAction.PAY,
        OrderStatus.PAID,
        {"orders": "order.paid", "kiosk": "order.paid", "kitchen": "order.queued", "board": "preparing"},
    ),
    (A, OrderAction.CANCEL, OrderStatus.CANCELLED, {"orders": "order.cancelled", "kiosk": "order.cancelled"}),
    (
        OrderStatus.PAID,
        OrderAction.START,
        OrderStatus.PREPARING,
        {"orders": "order.preparing", "kiosk": "order.preparing", "kitchen": "order.preparing"},
    ),
    (
        OrderStatus.PAID,
        OrderAction.REFUND,
        OrderStatus.REFUNDED,
        {"orders": "order.refunded", "kiosk": "order.refunded", "kitchen": "order.cancelled", "board": None},
    ),
    (
        OrderStatus.PREPARING,
        OrderAction.READY,
        OrderStatus.READY,
        {"orders": "order.ready", "kiosk": "order.ready", "kitchen": "order.ready", "board": "ready"},
    ),
    (
        OrderStatus.READY,
        OrderAction.RECALL,
        OrderStatus.PREPARING,
        {"orders": "order.recalled", "kiosk": "order.recalled", "kitchen": "order.recalled", "board": "preparing"},
    ),
    (
        OrderStatus.READY,
        OrderAction.COMPLETE,
        OrderStatus.COMPLETED,
        {"orders": "order.completed", "kiosk": "order.completed", "kitchen": "order.completed", "board": None},
    ),
]
ALLOWED = {(before, action) for before, action, _, _ in MOVES}


def _channels(counter: Counter) -> dict[str, str]:
    return {
        "orders": names.branch_orders(counter.branch_id),
        "kiosk": names.device(counter.kiosk_id),
        "kitchen": names.branch_kitchen(counter.branch_id),
        "board": names.branch_board(counter.branch_id),
    }


async def _move(db: Database, order_id: int, action: OrderAction, *, reason: str | None = None) -> Heard:
    """Lock the order and apply `action` in a transaction of its own, as a command does; what it emitted."""
    heard = Heard()
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        moved = await move(session, order, action, heard, reason=reason)
        assert moved is order
    return heard


# Allowed moves


@pytest.mark.parametrize(("before", "action", "after", "audience"), MOVES, ids=[move[1].value for move in MOVES])
async def test_each_allowed_move_stamps_its_moment_and_tells_who_must_know(
    db: Database, before: OrderStatus, action: OrderAction, after: OrderStatus, audience: dict[str, str | None]
) -> None:
    """The order reaches its new status, the moment is stamped (a recall clears `ready_at`), and the events of
    PROTOCOL.md go out with the order as stored, or its board entry."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, before)
    start = utcnow()
    heard = await _move(db, order_id, action)
    stored = await order_row(db, order_id)

    assert stored.status == after
    assert start <= stored.updated_at <= utcnow()
    assert stored.version == 2  # written once, moved once
    expected: dict[str, datetime | None] = dict.fromkeys(REACHED[before], LONG_AGO)
    if action == OrderAction.RECALL:
        expected["ready_at"] = None
    else:
        expected[REACHED[after][-1]] = stored.updated_at  # the moment just reached comes last
    assert moments(stored) == {name: expected.get(name) for name in moments(stored)}

    channels = _channels(counter)
    assert heard.pairs() == sorted(
        (channels[who], "board.updated" if who == "board" else str(event)) for who, event in audience.items()
    )
    for who, event in audience.items():
        if who == "board":
            entry = heard.data(channels["board"], "board.updated")
            assert entry == {"order_id": order_id, "version": 2, "number": stored.number, "column": event}
            continue
        data = heard.data(channels[who], str(event))
        assert (data["id"], data["status"], data["version"]) == (order_id, after.value, 2)
        assert {name: data[name] for name in moments(stored)} == {
            name: None if value is None else rfc3339(value) for name, value in moments(stored).items()
        }
        assert [(line["item_id"], line["qty"]) for line in data["lines"]] == [(counter.cola, 1)]


async def test_the_moved_order_shows_what_was_written_without_reading_it_back(db: Database) -> None:
    """The order `move` returns carries the new status and moments the UPDATE wrote."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        await move(session, order, OrderAction.START, Heard())
        in_memory = (order.status, order.started_at, order.updated_at)
    stored = await order_row(db, order_id)
    assert in_memory == (OrderStatus.PREPARING, stored.started_at, stored.updated_at)


async def test_an_order_without_its_kiosk_is_announced_to_the_others(db: Database) -> None:
    """An order whose kiosk is gone (its device id null) still reaches staff, kitchen and board."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A, from_kiosk=False)
    heard = await _move(db, order_id, OrderAction.PAY)
    assert heard.pairs() == sorted(
        [
            (names.branch_orders(counter.branch_id), "order.paid"),
            (names.branch_kitchen(counter.branch_id), "order.queued"),
            (names.branch_board(counter.branch_id), "board.updated"),
        ]
    )


# Refused moves


@pytest.mark.parametrize("status", list(OrderStatus))
async def test_a_move_the_status_does_not_allow_is_conflict_and_changes_nothing(
    db: Database, status: OrderStatus
) -> None:
    """Every action PROTOCOL.md does not allow from `status` is `conflict` naming the order and its status, with
    the moves that are allowed; the order is untouched and nothing is heard."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, status)
    refused = [action for action in OrderAction if (status, action) not in ALLOWED]
    allowed = sorted(action.value for (s, action) in ALLOWED if s == status)
    hint = f"allowed: {', '.join(allowed)}" if allowed else "it is final"
    heard = Heard()
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        for action in refused:
            with pytest.raises(ApiError) as caught:
                await move(session, order, action, heard)
            assert caught.value.code == "conflict"
            assert caught.value.details == {"order_id": order_id, "status": status.value}
            assert caught.value.message == f"cannot {action.value} an order that is {status.value}; {hint}"
    assert heard.events == []
    stored = await order_row(db, order_id)
    assert (stored.status, stored.updated_at) == (status, LONG_AGO)
    assert moments(stored) == {name: LONG_AGO if name in REACHED[status] else None for name in moments(stored)}


async def test_a_move_another_transaction_beat_is_conflict_with_the_status_it_left(db: Database) -> None:
    """The order changed between the read and the UPDATE: `conflict` with its status now, nothing emitted, and
    the order in hand shows what it became."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    heard = Heard()
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        # Written past the ORM, so that the order in hand still says `paid`, as a read just before the change would.
        orders = table(Order)
        await session.execute(update(orders).where(orders.c.id == order_id).values(status=OrderStatus.REFUNDED))
        with pytest.raises(ApiError) as caught:
            await move(session, order, OrderAction.START, heard)
        assert order.status == OrderStatus.REFUNDED
    assert caught.value.code == "conflict"
    assert caught.value.details == {"order_id": order_id, "status": "refunded"}
    assert "changed meanwhile" in caught.value.message
    assert heard.events == []
    stored = await order_row(db, order_id)
    assert (stored.status, stored.started_at) == (OrderStatus.REFUNDED, None)


# Stock and deadlines


async def test_a_cancel_gives_back_the_counted_stock_and_keeps_its_reason(db: Database) -> None:
    """Cancelling returns every counted item's quantities (lines of one item summed) and tells the menu; an item
    not counted stays so and is not announced; the reason is stored."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A, [(counter.fries, 2), (counter.cola, 4), (counter.fries, 1)])
    heard = await _move(db, order_id, OrderAction.CANCEL, reason="payment_timeout")
    assert await stock_of(db, counter.branch_id, counter.fries) == FRIES_LEFT + 3
    assert await stock_of(db, counter.branch_id, counter.cola) is None
    menu = names.branch_menu(counter.branch_id)
    assert [(channel, event) for channel, event, _ in heard.events if channel == menu] == [(menu, "stock.changed")]
    assert heard.data(menu, "stock.changed") == {
        "branch_id": counter.branch_id,
        "item_id": counter.fries,
        "available": True,
        "stock": FRIES_LEFT + 3,
        "orderable": True,
    }
    stored = await order_row(db, order_id)
    assert (stored.status, stored.cancel_reason) == (OrderStatus.CANCELLED, "payment_timeout")
    assert heard.data(names.branch_orders(counter.branch_id), "order.cancelled")["cancel_reason"] == "payment_timeout"


@pytest.mark.parametrize("action", [OrderAction.PAY, OrderAction.REFUND])
async def test_only_a_cancel_gives_stock_back(db: Database, action: OrderAction) -> None:
    """Paying keeps the stock the order reserved, and so does a refund (PROTOCOL.md: stock comes back on cancel)."""
    counter = await add_counter(db)
    status = A if action == OrderAction.PAY else OrderStatus.PAID
    order_id = await add_order(db, counter, status, [(counter.fries, 2)])
    heard = await _move(db, order_id, action)
    assert await stock_of(db, counter.branch_id, counter.fries) == FRIES_LEFT
    assert names.branch_menu(counter.branch_id) not in {channel for channel, _ in heard.pairs()}


async def test_giving_back_stock_returns_each_counted_item_and_tells_the_menu(db: Database) -> None:
    """`give_back_stock` alone: each counted item gets its lines' sum back, an 86'd one too (still not orderable),
    one `stock.changed` each; the order itself does not move."""
    counter = await add_counter(db)
    off = await add_item(db, counter.branch_id, stock=0, available=False)
    order_id = await add_order(db, counter, A, [(counter.fries, 1), (off, 2), (counter.cola, 1), (counter.fries, 1)])
    heard = Heard()
    async with db.session() as session:
        order = await lock_order(session, order_id)
        assert order is not None
        await give_back_stock(session, order, heard)
    menu = names.branch_menu(counter.branch_id)
    assert sorted((e[0], e[1], e[2]["item_id"]) for e in heard.events) == sorted(
        [(menu, "stock.changed", counter.fries), (menu, "stock.changed", off)]
    )
    by_item = {data["item_id"]: data for _, _, data in heard.events}
    assert by_item[off] == {
        "branch_id": counter.branch_id,
        "item_id": off,
        "available": False,
        "stock": 2,
        "orderable": False,
    }
    assert by_item[counter.fries]["stock"] == FRIES_LEFT + 2
    assert await stock_of(db, counter.branch_id, counter.fries) == FRIES_LEFT + 2
    assert await stock_of(db, counter.branch_id, off) == 2
    assert (await order_row(db, order_id)).status == A


@pytest.mark.parametrize(("action", "moment"), [(OrderAction.PAY, "paid_at"), (OrderAction.CANCEL, "cancelled_at")])
async def test_paying_or_cancelling_ends_the_orders_payment_deadline(
    db: Database, action: OrderAction, moment: str
) -> None:
    """The order's payment deadline is done at the moment of the move; a payment deadline of the same id is not
    the order's and stays open."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    await open_deadline(db, DeadlineKind.ORDER_PAYMENT, order_id)
    await open_deadline(db, DeadlineKind.PAYMENT, order_id)
    await _move(db, order_id, action)
    stored = await order_row(db, order_id)
    assert await deadline_done_at(db, DeadlineKind.ORDER_PAYMENT, order_id) == getattr(stored, moment)
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, order_id) is None
