"""Payments as plain records, read and written by prepared statements (persistence/prepared.py).

Every payment command touches one payment row a few times; as ORM objects each read and
write went through entity loading and the unit of work. Here a payment is a
`PaymentRecord` (the row's columns, by name) and every statement on it is prepared once.
A write returns the row as it now is (version and `updated_at` included), and the record
takes it in place, so whoever holds the record sees the payment as stored.

Where PostgreSQL allows a data-modifying CTE, the payment's deadline is set or finished in
the same statement as the payment's own write; SQLite runs it as a second statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Insert,
    Select,
    Update,
    bindparam,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.asyncio import AsyncSession

from persistence import deadlines
from persistence.base import UTCDateTime, table
from persistence.enums import DeadlineKind, PaymentMethod, PaymentStatus
from persistence.prepared import Prepared, Row
from persistence.tables import Deadline, Device, Payment

IN_FLIGHT = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)

_PAYMENTS = table(Payment)
_DEADLINES = table(Deadline)


@dataclass(slots=True, eq=False)
class PaymentRecord:
    """A payment row as stored: the columns of `payments`, by name."""

    id: int
    order_id: int
    branch_id: int
    method: PaymentMethod
    kiosk_id: int | None
    terminal_id: int | None
    amount: int
    currency: str
    status: PaymentStatus
    idempotency_key: str
    provider_ref: str | None
    message: str | None
    approved_at: datetime | None
    finished_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime

    def take(self, row: Row) -> PaymentRecord:
        """Hold `row` (the same payment as now stored); this record."""
        for name, value in zip(_NAMES, row, strict=True):
            setattr(self, name, value)
        return self


_NAMES = tuple(field.name for field in fields(PaymentRecord))
_COLUMNS = tuple(_PAYMENTS.c[name] for name in _NAMES)  # in the record's order: a row makes a record positionally


def _record(row: Row | None) -> PaymentRecord | None:
    return None if row is None else PaymentRecord(*row)


def _postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _in_flight() -> ColumnElement[bool]:
    # Spelled out: `in_()` with a list is an expanding parameter, which a prepared statement does not take.
    return or_(*(_PAYMENTS.c.status == status for status in IN_FLIGHT))


def _moment(name: str) -> Any:
    return bindparam(name, type_=UTCDateTime())


# Reads


_BY_ID = select(*_COLUMNS).where(_PAYMENTS.c.id == bindparam("payment_id"))
_LOCK = Prepared(_BY_ID.with_for_update())
_LOCK_IF_FREE = Prepared(_BY_ID.with_for_update(skip_locked=True))
_LOCK_APPROVED_OF_ORDER = Prepared(
    select(*_COLUMNS)
    .where(_PAYMENTS.c.order_id == bindparam("order_id"), _PAYMENTS.c.status == PaymentStatus.APPROVED)
    .with_for_update()
)
_LOCK_GATEWAY_BY_REF = Prepared(
    select(*_COLUMNS)
    .where(_PAYMENTS.c.provider_ref == bindparam("provider_ref"), _PAYMENTS.c.method == PaymentMethod.GATEWAY)
    .limit(1)
    .with_for_update()
)


async def lock_payment(session: AsyncSession, payment_id: int, *, if_free: bool = False) -> PaymentRecord | None:
    """The payment, its row locked until the transaction ends.

    `if_free`: None at once when another transaction holds the payment, instead of waiting for it.
    """
    statement = _LOCK_IF_FREE if if_free else _LOCK
    return _record(await statement.first(session, {"payment_id": payment_id}))


async def lock_approved_payment(session: AsyncSession, order_id: int) -> PaymentRecord | None:
    """The order's approved payment (there is at most one), locked; None when it has none."""
    return _record(await _LOCK_APPROVED_OF_ORDER.first(session, {"order_id": order_id}))


async def lock_gateway_payment(session: AsyncSession, provider_ref: str) -> PaymentRecord | None:
    """The gateway payment the payment API knows as `provider_ref`, locked; None when there is none."""
    return _record(await _LOCK_GATEWAY_BY_REF.first(session, {"provider_ref": provider_ref}))


# The kiosk's paired terminal, with the order's and that terminal's payments in flight: one row per payment (payment
# columns all NULL when there is none), in one round trip.
_DEVICES = table(Device)
_PAIRED_AND_IN_FLIGHT = Prepared(
    select(_DEVICES.c.paired_terminal_id, *_COLUMNS)
    .select_from(_DEVICES)
    .outerjoin(
        _PAYMENTS,
        or_(
            _PAYMENTS.c.order_id == bindparam("order_id"),
            _PAYMENTS.c.terminal_id == _DEVICES.c.paired_terminal_id,
        )
        & _in_flight(),
    )
    .where(_DEVICES.c.id == bindparam("kiosk_id"))
)


async def paired_terminal_and_in_flight(
    session: AsyncSession, kiosk_id: int, order_id: int
) -> tuple[int | None, list[PaymentRecord]]:
    """The kiosk's paired terminal (None: none, or no such kiosk) and the payments in flight of the order or of
    that terminal."""
    rows = await _PAIRED_AND_IN_FLIGHT.rows(session, {"kiosk_id": kiosk_id, "order_id": order_id})
    if not rows:
        return None, []
    return rows[0][0], [PaymentRecord(*row[1:]) for row in rows if row[1] is not None]


# Writes


def _with_deadline(moved: Update | Insert, deadline: Callable[[CTE], Update | Insert]) -> Select[Any]:
    """`moved` (a payment write) and, in the same statement, `deadline` on the payment it wrote (PostgreSQL)."""
    written = moved.returning(*_COLUMNS).cte("written")
    return select(*written.c).add_cte(deadline(written).cte("deadline"))


def _deadline_set(written: CTE) -> Insert:
    due_at = _moment("due_at")
    return (
        postgresql_insert(_DEADLINES)
        .from_select(
            ["kind", "ref_id", "due_at"],
            select(
                bindparam("deadline_kind", DeadlineKind.PAYMENT, type_=_DEADLINES.c.kind.type), written.c.id, due_at
            ),
        )
        .on_conflict_do_update(
            index_elements=[_DEADLINES.c.kind, _DEADLINES.c.ref_id], set_={"due_at": due_at, "done_at": null()}
        )
    )


class _Ending:
    """A payment write that finishes the payment's deadline at `done_at`: one statement on PostgreSQL, the write
    and `deadlines.finish` on SQLite (no data-modifying CTEs there). Finishes nothing when no row was written."""

    def __init__(self, moved: Update) -> None:
        self._alone = Prepared(moved.returning(*_COLUMNS))
        self._together = Prepared(_with_deadline(moved, partial(deadlines.finished_with, DeadlineKind.PAYMENT)))

    async def first(self, session: AsyncSession, params: Mapping[str, Any]) -> Row | None:
        """The payment as written, or None when the statement's conditions matched no row."""
        if _postgresql(session):
            return await self._together.first(session, params)
        row = await self._alone.first(session, params)
        if row is not None:
            await deadlines.finish(session, DeadlineKind.PAYMENT, row.id, params["done_at"])
        return row


_ADDED = insert(_PAYMENTS).values({name: bindparam(f"v_{name}") for name in _NAMES if name != "id"})
_ADD = Prepared(_ADDED.returning(*_COLUMNS))
_ADD_SCHEDULED = Prepared(_with_deadline(_ADDED, _deadline_set))


async def add_payment(session: AsyncSession, values: Mapping[str, Any], due_at: datetime) -> PaymentRecord:
    """Insert a payment (`values`: every column but `id`) with its deadline due at `due_at`; the payment.

    A broken rule of the table (a terminal with two payments in flight) raises `IntegrityError`.
    """
    params = {f"v_{name}": value for name, value in values.items()}
    if _postgresql(session):
        row = await _ADD_SCHEDULED.first(session, params | {"due_at": due_at})
    else:
        row = await _ADD.first(session, params)
        assert row is not None
        await deadlines.schedule(session, DeadlineKind.PAYMENT, row.id, due_at)
    assert row is not None
    return PaymentRecord(*row)


_CHANGEABLE = ("status", "provider_ref", "message", "approved_at", "finished_at", "updated_at")
_SAVE = (
    update(_PAYMENTS)
    .where(_PAYMENTS.c.id == bindparam("payment_id"))
    .values({name: bindparam(f"set_{name}") for name in _CHANGEABLE})
)
_SAVE_ALONE = Prepared(_SAVE.returning(*_COLUMNS))
_SAVE_ENDING = _Ending(_SAVE)


async def save_payment(
    session: AsyncSession, payment: PaymentRecord, *, at: datetime, finish_deadline: bool = False
) -> PaymentRecord:
    """Write what changes of a payment (status, provider_ref, message, approved_at, finished_at) to its row, locked
    by the caller, stamped `at`; with `finish_deadline`, its deadline is finished at `at` too. The record takes the
    row as stored (its version raised)."""
    params = {f"set_{name}": getattr(payment, name) for name in _CHANGEABLE} | {
        "payment_id": payment.id,
        "set_updated_at": at,
    }
    if finish_deadline:
        row = await _SAVE_ENDING.first(session, params | {"done_at": at})
    else:
        row = await _SAVE_ALONE.first(session, params)
    assert row is not None  # payments are never deleted, and the caller holds the row
    return payment.take(row)


_TO_PROCESSING = Prepared(
    update(_PAYMENTS)
    .where(
        _PAYMENTS.c.id == bindparam("payment_id"),
        _PAYMENTS.c.terminal_id == bindparam("terminal_id"),
        _PAYMENTS.c.status == PaymentStatus.PENDING,
    )
    .values(status=PaymentStatus.PROCESSING, updated_at=_moment("at"))
    .returning(*_COLUMNS)
)


async def start_processing(
    session: AsyncSession, payment_id: int, terminal_id: int, at: datetime
) -> PaymentRecord | None:
    """A pending payment of this terminal moved to processing; None when there is no such pending payment."""
    return _record(
        await _TO_PROCESSING.first(session, {"payment_id": payment_id, "terminal_id": terminal_id, "at": at})
    )


_RESULT_IN_FLIGHT = _Ending(
    update(_PAYMENTS)
    .where(
        _PAYMENTS.c.id == bindparam("payment_id"),
        _PAYMENTS.c.terminal_id == bindparam("terminal_id"),
        _in_flight(),
    )
    .values(
        status=bindparam("set_status"),
        provider_ref=func.coalesce(
            bindparam("set_provider_ref", type_=_PAYMENTS.c.provider_ref.type), _PAYMENTS.c.provider_ref
        ),
        message=bindparam("set_message"),
        finished_at=func.coalesce(_PAYMENTS.c.finished_at, _moment("done_at")),
        updated_at=_moment("done_at"),
    )
)
_CANCEL_IN_FLIGHT = _Ending(
    update(_PAYMENTS)
    .where(
        _PAYMENTS.c.id == bindparam("payment_id"),
        _PAYMENTS.c.kiosk_id == bindparam("kiosk_id"),
        _in_flight(),
    )
    .values(status=PaymentStatus.CANCELLED, finished_at=_moment("done_at"), updated_at=_moment("done_at"))
)


async def record_in_flight_result(
    session: AsyncSession,
    payment_id: int,
    terminal_id: int,
    status: PaymentStatus,
    provider_ref: str | None,
    message: str | None,
    at: datetime,
) -> PaymentRecord | None:
    """A result that needs no order (declined, failed) for a payment of this terminal still in flight, written
    with its deadline finished at `at`; None (nothing written) when there is no such payment in flight."""
    params = {
        "payment_id": payment_id,
        "terminal_id": terminal_id,
        "set_status": status,
        "set_provider_ref": provider_ref,
        "set_message": message,
        "done_at": at,
    }
    return _record(await _RESULT_IN_FLIGHT.first(session, params))


async def cancel_in_flight(session: AsyncSession, payment_id: int, kiosk_id: int, at: datetime) -> PaymentRecord | None:
    """This kiosk's payment in flight cancelled at `at`, its deadline finished; None (nothing written) when there
    is no such payment in flight."""
    return _record(
        await _CANCEL_IN_FLIGHT.first(session, {"payment_id": payment_id, "kiosk_id": kiosk_id, "done_at": at})
    )
