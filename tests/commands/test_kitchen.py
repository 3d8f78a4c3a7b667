"""Kitchen commands (server/commands/kitchen.py): the order state machine as kitchen displays drive it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from channels import names
from channels.names import ChannelName, parse
from persistence.enums import DeviceKind
from persistence.tables import OutboxEvent
from server.realtime.snapshots import Snapshots
from tests.live import add_device
from tests.shop import Shop, principal_of
from tests.world import World


async def emitted_since(shop: Shop, since: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Outbox events after the first `since`."""
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [(row.channel, row.event, row.data) for row in rows][since:]


async def count(shop: Shop) -> int:
    """How many outbox events there are."""
    return len(await emitted_since(shop, 0))


async def test_a_paid_order_goes_preparing_ready_completed(shop: Shop) -> None:
    """start, ready, complete move the order on and stamp each moment."""
    order = await shop.paid_order()
    started = await shop.send(shop.kitchen, "order.start", {"order_id": order["id"]})
    assert (started["status"], started["started_at"] is not None) == ("preparing", True)
    ready = await shop.send(shop.kitchen, "order.ready", {"order_id": order["id"]})
    assert (ready["status"], ready["ready_at"] is not None) == ("ready", True)
    done = await shop.send(shop.kitchen, "order.complete", {"order_id": order["id"]})
    assert (done["status"], done["completed_at"] is not None) == ("completed", True)


@pytest.mark.parametrize(
    ("moves", "illegal"),
    [
        ([], "order.ready"),
        ([], "order.complete"),
        ([], "order.recall"),
        (["order.start"], "order.start"),
        (["order.start"], "order.complete"),
        (["order.start", "order.ready", "order.complete"], "order.recall"),
    ],
)
async def test_illegal_moves_are_conflict_and_change_nothing(shop: Shop, moves: list[str], illegal: str) -> None:
    """A move the state machine does not allow is `conflict` with the current status; the order stays."""
    order = await shop.paid_order()
    for move in moves:
        order = await shop.send(shop.kitchen, move, {"order_id": order["id"]})
    before = await count(shop)
    error = await shop.error(shop.kitchen, illegal, {"order_id": order["id"]})
    assert (error["code"], error["details"]["status"]) == ("conflict", order["status"])
    assert await count(shop) == before


async def test_an_unpaid_order_cannot_be_started(shop: Shop) -> None:
    """The kitchen never sees an order awaiting payment: start is `conflict`."""
    cart = await shop.send(shop.kiosk, "cart.create", {})
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    order = await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})
    error = await shop.error(shop.kitchen, "order.start", {"order_id": order["id"]})
    assert (error["code"], error["details"]["status"]) == ("conflict", "awaiting_payment")


async def test_recall_takes_a_ready_order_back_to_preparing(shop: Shop) -> None:
    """order.recall from ready: preparing again, ready_at cleared, `order.recalled` and the board moves it back."""
    order = await shop.paid_order()
    await shop.send(shop.kitchen, "order.start", {"order_id": order["id"]})
    await shop.send(shop.kitchen, "order.ready", {"order_id": order["id"]})
    before = await count(shop)
    recalled = await shop.send(shop.kitchen, "order.recall", {"order_id": order["id"]})
    assert (recalled["status"], recalled["ready_at"]) == ("preparing", None)
    emitted = await emitted_since(shop, before)
    assert (names.branch_kitchen(shop.branch_id), "order.recalled", recalled) in emitted
    board = [data for channel, event, data in emitted if event == "board.updated"]
    assert board == [
        {"order_id": order["id"], "version": recalled["version"], "number": order["number"], "column": "preparing"}
    ]
    again = await shop.send(shop.kitchen, "order.ready", {"order_id": order["id"]})
    assert again["status"] == "ready"


async def test_the_board_hears_when_a_number_moves_column(shop: Shop) -> None:
    """board.updated: preparing when paid, nothing on start, ready when ready, off (null) when completed."""
    before = await count(shop)
    order = await shop.paid_order()
    for move in ("order.start", "order.ready", "order.complete"):
        await shop.send(shop.kitchen, move, {"order_id": order["id"]})
    board = [data["column"] for channel, event, data in await emitted_since(shop, before) if event == "board.updated"]
    assert board == ["preparing", "ready", None]


async def test_every_move_reaches_the_kitchen_the_kiosk_and_staff(shop: Shop) -> None:
    """order.preparing goes to the kitchen, the ordering kiosk and the branch's orders channel, with the order."""
    order = await shop.paid_order()
    before = await count(shop)
    started = await shop.send(shop.kitchen, "order.start", {"order_id": order["id"]})
    channels = {(c, e) for c, e, data in await emitted_since(shop, before) if data == started}
    assert channels == {
        (names.branch_kitchen(shop.branch_id), "order.preparing"),
        (names.device(shop.kiosk.id), "order.preparing"),
        (names.branch_orders(shop.branch_id), "order.preparing"),
    }


async def test_kitchen_commands_are_for_kitchen_displays_and_staff_of_the_branch(shop: Shop, world: World) -> None:
    """A kiosk may not start an order; staff may; a kitchen display of another branch gets `not_found`."""
    order = await shop.paid_order()
    assert (await shop.error(shop.kiosk, "order.start", {"order_id": order["id"]}))["code"] == "forbidden"
    _, token = await add_device(shop.services, world.branch_b, DeviceKind.KITCHEN_DISPLAY)
    other = await principal_of(shop.services, token)
    assert (await shop.error(other, "order.start", {"order_id": order["id"]}))["code"] == "not_found"
    assert (await shop.send(shop.staff, "order.start", {"order_id": order["id"]}))["status"] == "preparing"


async def test_kitchen_and_board_snapshots_show_the_open_orders(shop: Shop) -> None:
    """Kitchen: paid, preparing and ready tickets, first paid first; board: numbers by column; others absent."""
    first = await shop.paid_order()
    second = await shop.paid_order()
    third = await shop.paid_order()
    done = await shop.paid_order()
    second = await shop.send(shop.kitchen, "order.start", {"order_id": second["id"]})
    await shop.send(shop.kitchen, "order.start", {"order_id": third["id"]})
    third = await shop.send(shop.kitchen, "order.ready", {"order_id": third["id"]})
    for move in ("order.start", "order.ready", "order.complete"):
        await shop.send(shop.kitchen, move, {"order_id": done["id"]})
    cart = await shop.send(shop.kiosk, "cart.create", {})
    await shop.send(shop.kiosk, "cart.add", {"cart_id": cart["id"], "item_id": shop.cola})
    await shop.send(shop.kiosk, "order.place", {"cart_id": cart["id"]})

    snapshots = Snapshots(shop.services.db, shop.services.presence, shop.services.settings)
    kitchen = await snapshots.snapshot(channel(names.branch_kitchen(shop.branch_id)))
    assert [(t["id"], t["status"]) for t in kitchen["tickets"]] == [
        (first["id"], "paid"),
        (second["id"], "preparing"),
        (third["id"], "ready"),
    ]
    assert kitchen["tickets"][0]["lines"][0]["name"] == "Cola"
    board = await snapshots.snapshot(channel(names.branch_board(shop.branch_id)))
    assert board == {
        "preparing": [{"order_id": o["id"], "version": o["version"], "number": o["number"]} for o in (first, second)],
        "ready": [{"order_id": third["id"], "version": third["version"], "number": third["number"]}],
    }


def channel(name: str) -> ChannelName:
    """A parsed channel name."""
    parsed = parse(name)
    assert parsed is not None
    return parsed


async def test_a_move_retried_with_its_command_id_gets_the_stored_reply_and_changes_nothing(shop: Shop) -> None:
    """A kitchen move is one conditional UPDATE; its retry finds the order moved on (here: ready), answers the
    first reply, and neither moves the order again nor announces anything."""
    order = await shop.paid_order()
    first = await shop.request(shop.kitchen, "order.start", {"order_id": order["id"]}, command_id="start-1")
    assert first["ok"] and first["data"]["status"] == "preparing"
    ready = await shop.send(shop.kitchen, "order.ready", {"order_id": order["id"]})
    before = await count(shop)
    again = await shop.request(shop.kitchen, "order.start", {"order_id": order["id"]}, command_id="start-1")
    assert again == first
    assert await count(shop) == before
    stored = await shop.send(shop.kitchen, "order.recall", {"order_id": order["id"]})
    assert stored["version"] == ready["version"] + 1  # the retry wrote nothing in between
