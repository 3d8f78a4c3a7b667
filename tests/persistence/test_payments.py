"""Payment records and their statements (persistence/payments.py), on SQLite and PostgreSQL.

Each write says whether it wrote: a conditional one that matches no row writes nothing,
its deadline included; one that matches finishes (or sets) the payment's deadline with it
and hands back the row as stored, version raised.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from persistence import payments
from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import DeadlineKind, OrderStatus, PaymentMethod, PaymentStatus
from persistence.payments import PaymentRecord
from tests.orders.order_rows import (
    LONG_AGO,
    Counter,
    add_counter,
    add_order,
    add_payment,
    deadline_done_at,
    open_deadline,
    payment_row,
)

P = PaymentStatus
A = OrderStatus.AWAITING_PAYMENT


def _values(counter: Counter, order_id: int, key: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "order_id": order_id,
        "branch_id": counter.branch_id,
        "method": PaymentMethod.TERMINAL,
        "kiosk_id": counter.kiosk_id,
        "terminal_id": counter.terminal_id,
        "amount": 300,
        "currency": "eur",
        "status": P.PENDING,
        "idempotency_key": key,
        "provider_ref": None,
        "message": None,
        "approved_at": None,
        "finished_at": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


async def _in_flight(db: Database, status: PaymentStatus = P.PENDING) -> tuple[Counter, int, int]:
    """A counter, an order awaiting payment and its payment in `status` with an open deadline."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    payment_id = await add_payment(db, counter, order_id, status)
    await open_deadline(db, DeadlineKind.PAYMENT, payment_id)
    return counter, order_id, payment_id


async def test_a_payment_is_added_with_its_deadline(db: Database) -> None:
    """The insert gives the payment as stored and opens its deadline, due when asked."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    due = utcnow() + timedelta(minutes=2)
    async with db.session() as session:
        added = await payments.add_payment(session, _values(counter, order_id, "k-1"), due)
    stored = await payment_row(db, added.id)
    assert (added.status, added.version, added.order_id) == (P.PENDING, 1, order_id)
    assert (stored.idempotency_key, stored.terminal_id, stored.version) == ("k-1", counter.terminal_id, 1)
    assert added.created_at == stored.created_at
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, added.id) is None


async def test_a_second_payment_in_flight_at_a_terminal_is_refused_with_nothing_written(db: Database) -> None:
    """The table's rule (one payment in flight per terminal) raises IntegrityError; no deadline is left behind."""
    counter, order_id, _ = await _in_flight(db)
    with pytest.raises(IntegrityError):
        async with db.session() as session:
            await payments.add_payment(session, _values(counter, order_id, "k-2"), utcnow())
    async with db.session() as session:
        _, in_flight = await payments.paired_terminal_and_in_flight(session, counter.kiosk_id, order_id)
    assert len(in_flight) == 1


async def test_the_paired_terminal_comes_with_the_payments_in_flight_only(db: Database) -> None:
    """No kiosk: nothing; a kiosk without payments in flight: its terminal alone; final payments are left out."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, A)
    async with db.session() as session:
        assert await payments.paired_terminal_and_in_flight(session, counter.kiosk_id + 1000, order_id) == (None, [])
        assert await payments.paired_terminal_and_in_flight(session, counter.kiosk_id, order_id) == (
            counter.terminal_id,
            [],
        )
    await add_payment(db, counter, order_id, P.DECLINED)
    processing = await add_payment(db, counter, order_id, P.PROCESSING)
    async with db.session() as session:
        terminal, in_flight = await payments.paired_terminal_and_in_flight(session, counter.kiosk_id, order_id)
    assert terminal == counter.terminal_id
    assert [(p.id, p.status) for p in in_flight] == [(processing, P.PROCESSING)]
    assert isinstance(in_flight[0], PaymentRecord)


async def test_a_result_in_flight_is_written_with_its_deadline_finished(db: Database) -> None:
    """A decline of a payment in flight: status, message and moments written, the deadline done at the same moment,
    the reference kept when none is given, version raised."""
    counter, _, payment_id = await _in_flight(db, P.PROCESSING)
    at = utcnow()
    async with db.session() as session:
        ended = await payments.record_in_flight_result(
            session, payment_id, counter.terminal_id, P.DECLINED, None, "no", at
        )
    assert ended is not None
    assert (ended.status, ended.message, ended.finished_at, ended.updated_at) == (P.DECLINED, "no", at, at)
    assert ended.version == 2
    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.provider_ref, stored.finished_at) == (P.DECLINED, None, at)
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, payment_id) == at


@pytest.mark.parametrize("status", [P.DECLINED, P.CANCELLED, P.APPROVED])
async def test_a_result_for_a_final_payment_writes_nothing(db: Database, status: PaymentStatus) -> None:
    """Not in flight: None, the payment and its (still open) deadline untouched."""
    counter, _, payment_id = await _in_flight(db, status)
    async with db.session() as session:
        assert (
            await payments.record_in_flight_result(
                session, payment_id, counter.terminal_id, P.FAILED, "x", "y", utcnow()
            )
            is None
        )
    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.updated_at, stored.version) == (status, LONG_AGO, 1)
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, payment_id) is None


async def test_only_the_payments_own_terminal_or_kiosk_ends_it(db: Database) -> None:
    """Another device's result or cancel matches no row: nothing written, the deadline still open."""
    counter, _, payment_id = await _in_flight(db)
    async with db.session() as session:
        other = counter.terminal_id + counter.kiosk_id
        assert (
            await payments.record_in_flight_result(session, payment_id, other, P.FAILED, None, None, utcnow()) is None
        )
        assert await payments.cancel_in_flight(session, payment_id, counter.terminal_id, utcnow()) is None
        assert await payments.start_processing(session, payment_id, counter.kiosk_id, utcnow()) is None
    assert (await payment_row(db, payment_id)).version == 1
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, payment_id) is None


async def test_a_cancel_in_flight_ends_the_payment_and_its_deadline_once(db: Database) -> None:
    """The kiosk's cancel writes cancelled and finishes the deadline; the same cancel again writes nothing."""
    counter, _, payment_id = await _in_flight(db, P.PROCESSING)
    at = utcnow()
    async with db.session() as session:
        cancelled = await payments.cancel_in_flight(session, payment_id, counter.kiosk_id, at)
        assert cancelled is not None and (cancelled.status, cancelled.finished_at) == (P.CANCELLED, at)
        assert await payments.cancel_in_flight(session, payment_id, counter.kiosk_id, utcnow()) is None
    assert (await payment_row(db, payment_id)).version == 2
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, payment_id) == at


async def test_processing_starts_once(db: Database) -> None:
    """Pending to processing at the payment's terminal; already processing: None, nothing written."""
    counter, _, payment_id = await _in_flight(db)
    at = utcnow()
    async with db.session() as session:
        moved = await payments.start_processing(session, payment_id, counter.terminal_id, at)
        assert moved is not None and (moved.status, moved.version, moved.updated_at) == (P.PROCESSING, 2, at)
        assert await payments.start_processing(session, payment_id, counter.terminal_id, utcnow()) is None
    assert (await payment_row(db, payment_id)).version == 2


@pytest.mark.parametrize("finish", [True, False])
async def test_saving_a_locked_payment_writes_it_and_the_record_takes_the_row(db: Database, finish: bool) -> None:
    """The record's changes are written, stamped `at`; the same record then holds the raised version; the deadline
    is finished only when asked."""
    _, _, payment_id = await _in_flight(db)
    at = utcnow()
    async with db.session() as session:
        payment = await payments.lock_payment(session, payment_id)
        assert payment is not None
        payment.status, payment.provider_ref, payment.finished_at = P.FAILED, "ref", at
        saved = await payments.save_payment(session, payment, at=at, finish_deadline=finish)
    assert saved is payment
    assert (payment.version, payment.updated_at) == (2, at)
    stored = await payment_row(db, payment_id)
    assert (stored.status, stored.provider_ref, stored.finished_at, stored.version) == (P.FAILED, "ref", at, 2)
    assert await deadline_done_at(db, DeadlineKind.PAYMENT, payment_id) == (at if finish else None)


async def test_the_approved_payment_of_an_order_and_a_gateway_payment_by_reference(db: Database) -> None:
    """Each lookup finds its payment, and None when there is none."""
    counter = await add_counter(db)
    order_id = await add_order(db, counter, OrderStatus.PAID)
    approved = await add_payment(db, counter, order_id, P.APPROVED)
    gateway = await add_payment(db, counter, order_id, P.DECLINED, method=PaymentMethod.GATEWAY, provider_ref="pi_9")
    async with db.session() as session:
        found = await payments.lock_approved_payment(session, order_id)
        assert found is not None and found.id == approved
        assert await payments.lock_approved_payment(session, order_id + 1000) is None
        by_ref = await payments.lock_gateway_payment(session, "pi_9")
        assert by_ref is not None and by_ref.id == gateway
        assert await payments.lock_gateway_payment(session, "pi_0") is None
