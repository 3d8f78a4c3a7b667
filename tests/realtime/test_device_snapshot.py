"""The `device:{d}` snapshot (server/realtime/snapshots.py): what a device has open, read only where it has some.

Every device reads its own snapshot when it first connects; most have nothing open, and
then one statement says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from channels import names
from server.realtime.snapshots import Snapshots
from tests.shop import Shop


@contextmanager
def statements(shop: Shop) -> Iterator[list[str]]:
    """Every SQL statement run meanwhile, its transaction's BEGIN aside."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's own BEGIN IMMEDIATE is a statement of the transaction
            seen.append(statement)

    engine = shop.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def snapshot(shop: Shop, device_id: int) -> Any:
    """The device's snapshot as a socket's hello reads it."""
    channel = names.parse(names.device(device_id))
    assert channel is not None
    services = shop.services
    return await Snapshots(services.db, services.presence, services.settings).snapshot(channel)


async def test_a_device_with_nothing_open_is_read_with_one_statement(shop: Shop) -> None:
    """A kiosk and a terminal with no cart, order or payment open: an empty snapshot from one statement."""
    for device in (shop.kiosk, shop.terminal):
        with statements(shop) as seen:
            assert await snapshot(shop, device.id) == {"carts": [], "orders": [], "payments": []}
        assert len(seen) == 1, seen


async def test_a_device_with_a_cart_an_order_and_a_payment_gets_each_as_its_commands_gave_them(shop: Shop) -> None:
    """An open cart, an order awaiting payment and its payment in flight come back as the commands answered them,
    on the kiosk's snapshot; the terminal's holds the payment it is charging."""
    placed = await shop.placed_order()
    await shop.terminal_online()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": placed["id"]})
    cart = await shop.send(shop.kiosk, "cart.create", {})
    kiosk = await snapshot(shop, shop.kiosk.id)
    assert [c["id"] for c in kiosk["carts"]] == [cart["id"]]
    assert {key: value for key, value in kiosk["carts"][0].items() if key != "expires_at"} == {
        key: value for key, value in cart.items() if key != "expires_at"
    }
    assert kiosk["orders"] == [placed]
    assert [p["id"] for p in kiosk["payments"]] == [payment["id"]]
    terminal = await snapshot(shop, shop.terminal.id)
    assert (terminal["carts"], terminal["orders"]) == ([], [])
    assert [p["id"] for p in terminal["payments"]] == [payment["id"]]
