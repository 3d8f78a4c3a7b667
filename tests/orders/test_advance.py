"""A kitchen move in one conditional UPDATE (server/orders/order_changes.py `advance`), on SQLite and PostgreSQL.

It must write and announce exactly what reading the order and moving it does, and change
nothing when the order is elsewhere in its life, belongs to another branch or kiosk, or
does not exist: the caller then reads the order to say why.
"""

from __future__ import annotations

from typing import Any

import pytest

from persistence.database import Database
from persistence.enums import OrderStatus
from server.domain.order_states import SOURCE, OrderAction
from server.orders.order_changes import advance, lock_order, move
from tests.orders.order_rows import Counter, Heard, add_counter, add_order, moments, order_row

KITCHEN = (OrderAction.START, OrderAction.READY, OrderAction.RECALL, OrderAction.COMPLETE)


def _scopes(counter: Counter) -> dict[str, dict[str, Any]]:
    return {"chain": {}, "branch": {"branch_id": counter.branch_id}, "kiosk": {"device_id": counter.kiosk_id}}


async def _stored(db: Database, order_id: int) -> tuple[Any, ...]:
    row = await order_row(db, order_id)
    return row.status, row.version, {name: value is not None for name, value in moments(row).items()}


def _events(heard: Heard) -> list[tuple[str, str, dict[str, Any]]]:
    """The events without what differs between two like orders (ids, numbers, line ids, moments)."""
    differ = {"id", "order_id", "number"}
    events = []
    for channel, event, data in heard.events:
        same = {key: value for key, value in data.items() if key not in differ and not key.endswith("_at")}
        if "lines" in same:
            same["lines"] = [{k: v for k, v in line.items() if k != "id"} for line in same["lines"]]
        events.append((channel, event, same))
    return events


@pytest.mark.parametrize("action", KITCHEN, ids=[action.value for action in KITCHEN])
@pytest.mark.parametrize("scope", ["chain", "branch", "kiosk"])
async def test_it_writes_and_announces_what_read_and_move_do(db: Database, action: OrderAction, scope: str) -> None:
    """Two like orders, one moved after a read and one advanced: the same row and the same events, lines included."""
    counter = await add_counter(db)
    lines = [(counter.fries, 2), (counter.cola, 1)]
    moved_id = await add_order(db, counter, SOURCE[action], lines)
    advanced_id = await add_order(db, counter, SOURCE[action], lines)

    by_move, by_advance = Heard(), Heard()
    async with db.session() as session:
        order = await lock_order(session, moved_id)
        assert order is not None
        await move(session, order, action, by_move)
    async with db.session() as session:
        advanced = await advance(session, advanced_id, action, by_advance, scope=_scopes(counter)[scope])
    assert advanced is not None
    assert [(line.item_id, line.qty) for line in advanced.lines] == lines

    assert await _stored(db, advanced_id) == await _stored(db, moved_id)
    assert (advanced.status, advanced.version) == (await _stored(db, advanced_id))[:2]
    assert _events(by_advance) == _events(by_move)


@pytest.mark.parametrize("action", KITCHEN, ids=[action.value for action in KITCHEN])
async def test_an_order_elsewhere_in_its_life_is_left_alone(db: Database, action: OrderAction) -> None:
    """Every other status: None, nothing written, nothing announced."""
    counter = await add_counter(db)
    for status in set(OrderStatus) - {SOURCE[action]}:
        order_id = await add_order(db, counter, status)
        before = await _stored(db, order_id)
        heard = Heard()
        async with db.session() as session:
            assert await advance(session, order_id, action, heard, scope={}) is None
        assert await _stored(db, order_id) == before
        assert heard.events == []


async def test_another_branchs_or_kiosks_order_and_an_unknown_one_are_left_alone(db: Database) -> None:
    """The scope is part of the condition: no move across branches or kiosks."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    before = await _stored(db, order_id)
    heard = Heard()
    async with db.session() as session:
        for scope in ({"branch_id": counter.branch_id + 1}, {"device_id": counter.kiosk_id + 1}):
            assert await advance(session, order_id, OrderAction.START, heard, scope=scope) is None
        assert await advance(session, order_id + 1000, OrderAction.START, heard, scope={}) is None
    assert await _stored(db, order_id) == before
    assert heard.events == []


@pytest.mark.parametrize("action", [OrderAction.PAY, OrderAction.CANCEL, OrderAction.REFUND])
async def test_a_move_with_more_to_do_than_the_order_is_refused(db: Database, action: OrderAction) -> None:
    """Paying, cancelling and refunding also touch deadlines, stock or payments: they are read and moved."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, SOURCE[action])
    async with db.session() as session:
        with pytest.raises(ValueError, match="read it"):
            await advance(session, order_id, action, Heard(), scope={})
    assert (await _stored(db, order_id))[0] == SOURCE[action]
