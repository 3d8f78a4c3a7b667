"""Payment commands (server/commands/payments.py): terminal charges, results, cancels and timeouts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from channels import names
from persistence.base import utcnow
from persistence.enums import DeviceKind, OrderStatus, PaymentStatus
from persistence.tables import Order, OutboxEvent, Payment
from tests.live import add_device
from tests.shop import Device, Shop, principal_of


async def emitted_since(shop: Shop, since: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Outbox events after the first `since`: channel, name, data."""
    async with shop.services.db.session() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [(row.channel, row.event, row.data) for row in rows][since:]


async def order_status(shop: Shop, order_id: int) -> OrderStatus:
    """The stored status of an order."""
    async with shop.services.db.session() as session:
        status = await session.scalar(select(Order.status).where(Order.id == order_id))
    assert status is not None
    return status


async def test_start_asks_the_paired_terminal_to_charge_the_order_total(shop: Shop) -> None:
    """payment.start: a pending payment for the server's total; the terminal hears payment.requested."""
    await shop.terminal_online()
    order = await shop.placed_order([{"item_id": shop.fries, "qty": 2}])
    before = len(await emitted_since(shop, 0))
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    assert (payment["status"], payment["amount"], payment["currency"]) == ("pending", 700, "EUR")
    assert (payment["kiosk_id"], payment["terminal_id"], payment["method"]) == (
        shop.kiosk.id,
        shop.terminal.id,
        "terminal",
    )
    heard = {(channel, event) for channel, event, _ in await emitted_since(shop, before)}
    assert heard == {
        (names.device(shop.terminal.id), "payment.requested"),
        (names.device(shop.kiosk.id), "payment.pending"),
        (names.branch_orders(shop.branch_id), "payment.pending"),
    }


async def test_a_double_tap_gives_one_payment_and_one_charge_request(shop: Shop) -> None:
    """A second payment.start (another id) for the same order answers the payment in flight, asking nothing new."""
    await shop.terminal_online()
    order = await shop.placed_order()
    first = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    before = len(await emitted_since(shop, 0))
    second = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    assert second == first
    assert await emitted_since(shop, before) == []


async def test_an_offline_terminal_is_terminal_offline_at_once(shop: Shop) -> None:
    """No connected terminal: `terminal_offline`, and no payment is created."""
    order = await shop.placed_order()
    error = await shop.error(shop.kiosk, "payment.start", {"order_id": order["id"]})
    assert (error["code"], error["details"]["terminal_id"]) == ("terminal_offline", shop.terminal.id)
    error = await shop.error(shop.kiosk2, "payment.start", {"order_id": order["id"]})
    assert error["code"] == "not_found"  # not its order
    async with shop.services.db.session() as session:
        assert (await session.scalars(select(Payment))).all() == []


async def test_a_terminal_busy_with_another_order_is_terminal_busy(shop: Shop) -> None:
    """A second order while the terminal charges the first: `terminal_busy`."""
    await shop.terminal_online()
    first, second = await shop.placed_order(), await shop.placed_order()
    await shop.send(shop.kiosk, "payment.start", {"order_id": first["id"]})
    error = await shop.error(shop.kiosk, "payment.start", {"order_id": second["id"]})
    assert error["code"] == "terminal_busy"


async def test_two_orders_started_at_once_on_one_terminal_give_one_charge(
    shop: Shop, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL both find the terminal free, then both insert: its unique index lets one in and the other is
    `terminal_busy` with nothing of it kept. (On SQLite the second only starts once the first committed, and the
    busy check refuses it.)"""
    await shop.terminal_online()
    first, second = await shop.placed_order(), await shop.placed_order()
    if backend == "postgresql":
        # Each waits after its busy check for the other's (SQLite's transactions take turns, so it cannot race).
        both_checked, is_online = asyncio.Barrier(2), shop.services.presence.is_online

        async def held(device_id: int) -> bool:
            online = await is_online(device_id)
            await asyncio.wait_for(both_checked.wait(), 5)
            return online

        monkeypatch.setattr(shop.services.presence, "is_online", held)
    replies = await asyncio.gather(
        *(shop.request(shop.kiosk, "payment.start", {"order_id": order["id"]}) for order in (first, second))
    )
    assert sorted(reply["ok"] for reply in replies) == [False, True]
    refused = next(reply for reply in replies if not reply["ok"])
    assert refused["error"]["code"] == "terminal_busy"
    async with shop.services.db.session() as session:
        payments = (await session.scalars(select(Payment))).all()
    assert [(p.terminal_id, p.status) for p in payments] == [(shop.terminal.id, PaymentStatus.PENDING)]


async def test_approved_pays_the_order_and_reaches_the_kitchen(shop: Shop) -> None:
    """progress then approved: the order is paid, queued in the kitchen, and the board shows it."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    processing = await shop.send(
        shop.terminal, "payment.progress", {"payment_id": payment["id"], "status": "processing"}
    )
    assert processing["status"] == "processing"
    before = len(await emitted_since(shop, 0))
    result = {"payment_id": payment["id"], "status": "approved", "provider_ref": "auth-1", "message": "ok"}
    approved = await shop.send(shop.terminal, "payment.result", result)
    assert (approved["status"], approved["provider_ref"]) == ("approved", "auth-1")
    assert await order_status(shop, order["id"]) == OrderStatus.PAID
    heard = {(channel, event) for channel, event, _ in await emitted_since(shop, before)}
    assert (names.branch_kitchen(shop.branch_id), "order.queued") in heard
    assert (names.branch_board(shop.branch_id), "board.updated") in heard
    assert (names.device(shop.kiosk.id), "payment.approved") in heard
    again = await shop.send(shop.terminal, "payment.result", result)
    assert again["status"] == "approved"  # the same word twice changes nothing


async def test_declined_leaves_the_order_awaiting_payment_for_another_try(shop: Shop) -> None:
    """A declined card: payment final, order still awaiting payment; a new payment.start charges again."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    await shop.send(shop.terminal, "payment.result", {"payment_id": payment["id"], "status": "declined"})
    assert await order_status(shop, order["id"]) == OrderStatus.AWAITING_PAYMENT
    retry = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    assert retry["id"] != payment["id"] and retry["status"] == "pending"
    error = await shop.error(shop.terminal, "payment.result", {"payment_id": payment["id"], "status": "failed"})
    assert error["code"] == "conflict"  # a final result does not change into another one without money


async def test_an_approval_after_a_decline_is_never_dropped(shop: Shop) -> None:
    """Declined, then approved after all: the order is paid; if another payment paid it first, needs_refund."""
    await shop.terminal_online()
    order = await shop.placed_order()
    first = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    await shop.send(shop.terminal, "payment.result", {"payment_id": first["id"], "status": "declined"})
    approved = await shop.send(shop.terminal, "payment.result", {"payment_id": first["id"], "status": "approved"})
    assert approved["status"] == "approved"
    assert await order_status(shop, order["id"]) == OrderStatus.PAID

    other = await shop.placed_order()
    declined = await shop.send(shop.kiosk, "payment.start", {"order_id": other["id"]})
    await shop.send(shop.terminal, "payment.result", {"payment_id": declined["id"], "status": "declined"})
    retry = await shop.send(shop.kiosk, "payment.start", {"order_id": other["id"]})
    await shop.send(shop.terminal, "payment.result", {"payment_id": retry["id"], "status": "approved"})
    late = await shop.send(shop.terminal, "payment.result", {"payment_id": declined["id"], "status": "approved"})
    assert late["status"] == "needs_refund"
    assert await order_status(shop, other["id"]) == OrderStatus.PAID


async def test_cancel_asks_the_terminal_to_stop(shop: Shop) -> None:
    """payment.cancel: cancelled, payment.cancel_requested to the terminal; once final it is `conflict`."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    before = len(await emitted_since(shop, 0))
    cancelled = await shop.send(shop.kiosk, "payment.cancel", {"payment_id": payment["id"]})
    assert cancelled["status"] == "cancelled"
    heard = {(channel, event) for channel, event, _ in await emitted_since(shop, before)}
    assert (names.device(shop.terminal.id), "payment.cancel_requested") in heard
    assert (await shop.error(shop.kiosk, "payment.cancel", {"payment_id": payment["id"]}))["code"] == "conflict"


async def test_a_payment_without_result_expires_and_a_late_approval_still_pays(shop: Shop) -> None:
    """After PAYMENT_TIMEOUT_S the payment expires; an approval arriving later pays the order all the same."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    later = utcnow() + timedelta(seconds=shop.services.settings.PAYMENT_TIMEOUT_S + 1)
    assert await shop.services.deadlines.run_once(later) == 1
    async with shop.services.db.session() as session:
        assert await session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "expired"
    late = await shop.send(shop.terminal, "payment.result", {"payment_id": payment["id"], "status": "approved"})
    assert late["status"] == "approved"
    assert await order_status(shop, order["id"]) == OrderStatus.PAID


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_timeout_passes_over_a_payment_whose_result_is_being_recorded(shop: Shop) -> None:
    """A transaction holds the payment (as a result being recorded does) when it times out: the worker does not
    wait for it, which would deadlock with the result finishing the same deadline, and expires it on a later pass."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    later = utcnow() + timedelta(seconds=shop.services.settings.PAYMENT_TIMEOUT_S + 1)
    assert await shop.deadlines_while_held(Payment, payment["id"], later) == 0
    assert await shop.services.deadlines.run_once(later) == 1
    async with shop.services.db.session() as session:
        assert await session.scalar(select(Payment.status).where(Payment.id == payment["id"])) == "expired"


async def test_a_late_approval_for_an_order_that_cannot_be_paid_needs_a_refund(shop: Shop) -> None:
    """Expired, then the order is paid in cash, then the terminal approves: the payment is needs_refund."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    later = utcnow() + timedelta(seconds=shop.services.settings.PAYMENT_TIMEOUT_S + 1)
    await shop.services.deadlines.run_once(later)
    await shop.send(shop.staff, "order.mark_paid", {"order_id": order["id"]})
    before = len(await emitted_since(shop, 0))
    late = await shop.send(shop.terminal, "payment.result", {"payment_id": payment["id"], "status": "approved"})
    assert late["status"] == "needs_refund"
    heard = {(channel, event) for channel, event, _ in await emitted_since(shop, before)}
    assert (names.branch_orders(shop.branch_id), "payment.needs_refund") in heard


async def test_two_approvals_for_one_order_at_once_leave_one_approved(shop: Shop) -> None:
    """Two expired payments of one order approved concurrently: one pays the order, the other needs a refund."""
    await shop.terminal_online()
    order = await shop.placed_order()
    later = utcnow() + timedelta(seconds=shop.services.settings.PAYMENT_TIMEOUT_S + 1)
    first = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    await shop.services.deadlines.run_once(later)
    second = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    await shop.services.deadlines.run_once(later + timedelta(seconds=shop.services.settings.PAYMENT_TIMEOUT_S + 1))
    replies = await asyncio.gather(
        *(
            shop.send(shop.terminal, "payment.result", {"payment_id": p["id"], "status": "approved"})
            for p in (first, second)
        )
    )
    assert sorted(reply["status"] for reply in replies) == ["approved", "needs_refund"]
    async with shop.services.db.session() as session:
        approved = (await session.scalars(select(Payment).where(Payment.status == PaymentStatus.APPROVED))).all()
    assert len(approved) == 1
    assert await order_status(shop, order["id"]) == OrderStatus.PAID


async def test_only_the_charging_terminal_reports_results(shop: Shop) -> None:
    """A kiosk may not send results (`forbidden`); another terminal's payment is `not_found`."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    data = {"payment_id": payment["id"], "status": "approved"}
    assert (await shop.error(shop.kiosk, "payment.result", data))["code"] == "forbidden"
    assert (await shop.error(shop.kitchen, "payment.result", data))["code"] == "forbidden"


async def test_progress_moves_only_this_terminals_pending_payment_once(shop: Shop) -> None:
    """Again: the same payment, no second event; after a result: `conflict`; another terminal's: `not_found`."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    data = {"payment_id": payment["id"], "status": "processing"}
    other_id, other_token = await add_device(shop.services, shop.branch_id, DeviceKind.PAYMENT_TERMINAL)
    other = Device(other_id, other_token, await principal_of(shop.services, other_token))
    assert (await shop.error(other, "payment.progress", data))["code"] == "not_found"

    before = len(await emitted_since(shop, 0))
    first = await shop.send(shop.terminal, "payment.progress", data)
    assert (first["status"], first["version"]) == ("processing", payment["version"] + 1)
    announced = {(channel, event) for channel, event, _ in await emitted_since(shop, before)}
    assert announced == {
        (channel, "payment.processing")
        for channel in (
            names.branch_orders(shop.branch_id),
            names.device(shop.kiosk.id),
            names.device(shop.terminal.id),
        )
    }
    heard = len(await emitted_since(shop, 0))
    assert await shop.send(shop.terminal, "payment.progress", data) == first
    assert len(await emitted_since(shop, 0)) == heard  # nothing changed, nothing announced

    await shop.send(shop.terminal, "payment.result", {"payment_id": payment["id"], "status": "declined"})
    error = await shop.error(shop.terminal, "payment.progress", data)
    assert (error["code"], error["details"]["status"]) == ("conflict", "declined")


async def _payment_version(shop: Shop, payment_id: int) -> tuple[PaymentStatus, int]:
    async with shop.services.db.session() as session:
        row = (await session.execute(select(Payment.status, Payment.version).where(Payment.id == payment_id))).one()
    return row.status, row.version


async def test_a_decline_retried_with_its_command_id_gets_the_stored_reply_and_changes_nothing(shop: Shop) -> None:
    """The decline is written at once; the same command again answers the stored reply, with no second write or
    event."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    data = {"payment_id": payment["id"], "status": "declined", "message": "no"}
    first = await shop.request(shop.terminal, "payment.result", data, command_id="decline-1")
    assert first["ok"] and first["data"]["status"] == "declined"
    before = len(await emitted_since(shop, 0))
    again = await shop.request(shop.terminal, "payment.result", data, command_id="decline-1")
    assert again == first
    assert await emitted_since(shop, before) == []
    assert await _payment_version(shop, payment["id"]) == (PaymentStatus.DECLINED, payment["version"] + 1)


async def test_a_decline_or_cancel_from_another_device_is_not_found_and_changes_nothing(shop: Shop) -> None:
    """Another terminal's decline and another kiosk's cancel match nothing: `not_found`, the payment untouched."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    terminal_id, terminal_token = await add_device(shop.services, shop.branch_id, DeviceKind.PAYMENT_TERMINAL)
    terminal = Device(terminal_id, terminal_token, await principal_of(shop.services, terminal_token))
    kiosk_id, kiosk_token = await add_device(shop.services, shop.branch_id, DeviceKind.KIOSK)
    kiosk = Device(kiosk_id, kiosk_token, await principal_of(shop.services, kiosk_token))
    declined = {"payment_id": payment["id"], "status": "declined"}
    assert (await shop.error(terminal, "payment.result", declined))["code"] == "not_found"
    assert (await shop.error(kiosk, "payment.cancel", {"payment_id": payment["id"]}))["code"] == "not_found"
    assert await _payment_version(shop, payment["id"]) == (PaymentStatus.PENDING, payment["version"])


async def test_a_cancel_and_a_decline_at_once_end_the_payment_once(shop: Shop) -> None:
    """The kiosk cancels while the terminal declines: one of them ends the payment, the other is `conflict`
    naming the status the first wrote."""
    await shop.terminal_online()
    order = await shop.placed_order()
    payment = await shop.send(shop.kiosk, "payment.start", {"order_id": order["id"]})
    cancel, decline = await asyncio.gather(
        shop.request(shop.kiosk, "payment.cancel", {"payment_id": payment["id"]}),
        shop.request(shop.terminal, "payment.result", {"payment_id": payment["id"], "status": "declined"}),
    )
    assert sorted([cancel["ok"], decline["ok"]]) == [False, True]
    winner, loser = (cancel, decline) if cancel["ok"] else (decline, cancel)
    assert loser["error"]["code"] == "conflict"
    assert loser["error"]["details"]["status"] == winner["data"]["status"]
    assert await _payment_version(shop, payment["id"]) == (
        PaymentStatus(winner["data"]["status"]),
        payment["version"] + 1,
    )
