"""What one complete order costs the database, command by command: statements and commits, pinned.

An order is the simulator's flow: a cart with two items, placed, charged by the paired
terminal (processing, then approved), and taken through the kitchen. Each command's count
of SQL statements (BEGIN and COMMIT aside) and of committed transactions is pinned on
PostgreSQL, where round trips are what an order costs; a change that adds one fails here,
and one that saves one updates the pin. The relay's background "published" marks are left
out: they are batched across commands, so they are not any one command's. The counts are
a running server's, whose copy of the catalogue (server/orders/catalogue.py) holds the
items and the branch's stations already: the first order of a process reads each once more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from tests.commands.test_combos import add_combo, with_shake
from tests.shop import Device, Shop

# Statements and commits of each command of one order on PostgreSQL: 31 statements and 10 commits in all.
PINNED = {
    "cart.create": (2, 1),
    "cart.add": (4, 1),
    "cart.add (second item)": (4, 1),
    "order.place": (5, 1),
    "payment.start": (4, 1),
    "payment.progress": (2, 1),
    "payment.result": (4, 1),
    "order.start": (2, 1),
    "order.ready": (2, 1),
    "order.complete": (2, 1),
}


class Counts:
    """Statements and commits seen on the engine, without the relay's background marks.

    A commit counts when its transaction ran a counted statement: a transaction of the
    relay's own, which only marks, is not the command's.
    """

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0
        self._open: set[int] = set()

    def statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("UPDATE outbox SET published_at"):
            self.statements.append(statement)
            self._open.add(id(conn))

    def commit(self, conn: Any) -> None:
        if id(conn) in self._open:
            self._open.discard(id(conn))
            self.commits += 1


@contextmanager
def counting(shop: Shop) -> Iterator[Counts]:
    """Count what runs on the shop's database until the block ends."""
    engine = shop.services.db.engine.sync_engine
    counts = Counts()
    event.listen(engine, "before_cursor_execute", counts.statement)
    event.listen(engine, "commit", counts.commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", counts.statement)
        event.remove(engine, "commit", counts.commit)


async def _order(shop: Shop) -> dict[str, tuple[int, int]]:
    """Run one complete order; each command's (statements, commits)."""
    seen: dict[str, tuple[int, int]] = {}

    async def send(name: str, sender: Device, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        with counting(shop) as counts:
            reply = await shop.send(sender, kind, data)
        seen[name] = (len(counts.statements), counts.commits)
        return reply

    cart = await send("cart.create", shop.kiosk, "cart.create", {})
    await send("cart.add", shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola, "qty": 1})
    await send("cart.add (second item)", shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.fries})
    order = await send("order.place", shop.kiosk, "order.place", {"cart_id": cart["id"]})
    payment = await send("payment.start", shop.kiosk, "payment.start", {"order_id": order["id"]})
    paid = {"payment_id": payment["id"]}
    await send("payment.progress", shop.terminal, "payment.progress", paid | {"status": "processing"})
    await send("payment.result", shop.terminal, "payment.result", paid | {"status": "approved"})
    for kind in ("order.start", "order.ready", "order.complete"):
        await send(kind, shop.kitchen, kind, {"order_id": order["id"]})
    return seen


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_each_command_of_an_order_runs_its_pinned_statements_and_commits_once(shop: Shop) -> None:
    """The statements and commits of every command of one complete order, as pinned above; the first order also
    reads each item it adds, and its branch's kitchen stations at placement, from the catalogue."""
    await shop.terminal_online()
    first = await _order(shop)
    assert await _order(shop) == PINNED
    assert first == PINNED | {"cart.add": (5, 1), "cart.add (second item)": (5, 1), "order.place": (6, 1)}


# A cart holding a combo reads its components' levels in one statement more (cart.add 5 against an item's 4), and
# order.place takes from each counted component (Fries and Shake here) in one conditional UPDATE each, as from any
# counted item: 7, against 5 for the cola and fries above.
COMBO_PINNED = {"cart.add (combo)": (5, 1), "order.place (combo)": (7, 1)}


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_combo_costs_one_read_more_to_add_and_one_update_per_counted_component_to_place(shop: Shop) -> None:
    """Once the catalogue is read: a combo with a shake added, then placed, as pinned above."""
    combo = await add_combo(shop)
    line = {"item_id": combo.item_id, "components": with_shake(combo, combo.large, shop)}
    seen: dict[str, tuple[int, int]] = {}
    for _ in range(2):  # the second time with the catalogue read
        cart = await shop.send(shop.kiosk, "cart.create", {})
        with counting(shop) as counts:
            await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], **line})
        seen["cart.add (combo)"] = (len(counts.statements), counts.commits)
        with counting(shop) as counts:
            await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
        seen["order.place (combo)"] = (len(counts.statements), counts.commits)
    assert seen == COMBO_PINNED
