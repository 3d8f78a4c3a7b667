"""The newest version of each order, payment, cart and board entry a device heard of (channels/versions.py)."""

from __future__ import annotations

from channels.versions import Versions


def test_the_newest_version_of_a_thing_is_kept_and_an_older_one_ignored() -> None:
    """A later version replaces the one held, and so does the same one again; an older one, arriving after it, does
    not."""
    versions = Versions()
    assert versions.take("order.ready", {"id": 7, "version": 4, "status": "ready"})
    assert not versions.take("order.preparing", {"id": 7, "version": 3, "status": "preparing"})
    assert versions.take("order.queued", {"id": 7, "version": 4, "status": "ready"})
    assert versions.get("order", 7) == {"id": 7, "version": 4, "status": "ready"}
    assert not versions.is_newest("order.preparing", {"id": 7, "version": 3})
    assert versions.is_newest("order.ready", {"id": 7, "version": 4})
    assert versions.take("order.completed", {"id": 7, "version": 5, "status": "completed"})
    assert versions.get("order", 7) == {"id": 7, "version": 5, "status": "completed"}


def test_things_are_told_apart_by_kind_and_id_and_board_entries_by_their_order() -> None:
    """An order, a payment and a cart with one id are three things; a board entry is its order's place."""
    versions = Versions()
    for name in ("order.paid", "payment.approved", "cart.updated"):
        assert versions.take(name, {"id": 1, "version": 2})
    assert versions.take("board.updated", {"order_id": 1, "version": 2, "number": 5, "column": "preparing"})
    assert not versions.take("board.updated", {"order_id": 1, "version": 1, "number": 5, "column": None})
    assert versions.take("order.start", {"id": 2, "version": 3})  # a command's reply: named by the command
    assert [versions.get(thing, 1) for thing in ("order", "payment", "cart")] == [{"id": 1, "version": 2}] * 3
    assert versions.get("board", 1) == {"order_id": 1, "version": 2, "number": 5, "column": "preparing"}
    assert versions.get("order", 2) == {"id": 2, "version": 3}


def test_snapshot_rows_count_like_events() -> None:
    """Tickets, orders, carts and payments of a snapshot are held, board rows with their column; events older
    than the snapshot then lose."""
    versions = Versions()
    versions.take_snapshot({"tickets": [{"id": 1, "version": 6, "status": "ready"}]})
    versions.take_snapshot(
        {
            "carts": [{"id": 2, "version": 3}],
            "orders": [{"id": 3, "version": 1}],
            "payments": [{"id": 4, "version": 2}],
        }
    )
    versions.take_snapshot({"preparing": [{"order_id": 5, "version": 3, "number": 9}], "ready": []})
    assert not versions.take("order.preparing", {"id": 1, "version": 5, "status": "preparing"})
    assert versions.get("order", 1) == {"id": 1, "version": 6, "status": "ready"}
    assert [versions.get("cart", 2), versions.get("order", 3), versions.get("payment", 4)] == [
        {"id": 2, "version": 3},
        {"id": 3, "version": 1},
        {"id": 4, "version": 2},
    ]
    assert versions.get("board", 5) == {"order_id": 5, "version": 3, "number": 9, "column": "preparing"}


def test_data_without_a_version_is_not_tracked() -> None:
    """The menu, presence and the connection's own replies carry no version: nothing is held, nothing ignored."""
    versions = Versions()
    assert not versions.take("stock.changed", {"item_id": 1, "available": False})
    assert not versions.take("subscribe", {"channel": "branch:1:menu", "seq": 0})
    assert not versions.take("order.place", None)
    versions.take_snapshot({"categories": [], "branch_id": 1})
    versions.take_snapshot({"devices": [{"id": 1, "online": True}]})
    assert versions.is_newest("stock.changed", {"item_id": 1, "available": True})
    assert versions.get("order", 1) is None


def test_a_cart_priced_afresh_at_the_version_held_replaces_it() -> None:
    """A cart's prices come from the menu as it is when read: a snapshot at the same version brings the new ones."""
    versions = Versions()
    assert versions.take("cart.updated", {"id": 3, "version": 2, "total": 900})
    versions.take_snapshot({"carts": [{"id": 3, "version": 2, "total": 950}]})
    assert versions.get("cart", 3) == {"id": 3, "version": 2, "total": 950}
    assert not versions.take("cart.updated", {"id": 3, "version": 1, "total": 800})
