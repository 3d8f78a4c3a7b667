"""Paid orders waiting to be pushed to the point-of-sale system (the POS's own outbox).

A row goes `pending` -> `delivered`, or -> `failed` (a permanent refusal, or the retry
budget spent); an admin may put a failed row back to `pending`. Claiming a row counts
the attempt and leases it (its `next_attempt_at` moves past the push's longest run), so
the push happens outside any transaction; if the pusher dies, the lease runs out and
the row is tried again with the same idempotency key: at least once, never lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import utcnow
from persistence.enums import DeliveryStatus
from persistence.tables import PosDelivery

ERROR_LENGTH = 1000  # the width of `last_error`


def enqueue(session: AsyncSession, order_id: int) -> None:
    """Queue the order for the POS in the caller's transaction, with the idempotency key every attempt sends."""
    session.add(
        PosDelivery(
            order_id=order_id,
            idempotency_key=str(uuid.uuid4()),
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
            created_at=utcnow(),
        )
    )


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, *, lease_until: datetime
) -> Sequence[PosDelivery]:
    """Pending deliveries due by `now`, oldest first, each with its attempt counted and leased until `lease_until`.

    On PostgreSQL other instances skip the rows locked by this transaction, and once it
    commits the lease keeps them away until `lease_until`; SQLite has a single writer.
    """
    statement = (
        select(PosDelivery)
        .where(PosDelivery.status == DeliveryStatus.PENDING, PosDelivery.next_attempt_at <= now)
        .order_by(PosDelivery.next_attempt_at, PosDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (await session.scalars(statement)).all()
    for delivery in claimed:
        delivery.attempts += 1
        delivery.next_attempt_at = lease_until
    await session.flush()
    return claimed


async def mark_delivered(session: AsyncSession, delivery_id: int, at: datetime) -> bool:
    """Record that the POS accepted the order; False if it was already recorded as delivered.

    A 2xx is the truth whatever became of the row meanwhile (another instance's lease, a
    failure recorded by a slower attempt): the POS has the order.
    """
    result = await session.execute(
        update(PosDelivery)
        .where(PosDelivery.id == delivery_id, PosDelivery.status != DeliveryStatus.DELIVERED)
        .values(status=DeliveryStatus.DELIVERED, delivered_at=at)
        .returning(PosDelivery.id),
        execution_options={"synchronize_session": False},
    )
    return result.first() is not None


async def schedule_retry(session: AsyncSession, delivery_id: int, attempt: int, error: str, at: datetime) -> bool:
    """Try again at `at` after attempt number `attempt` failed; False when that attempt is no longer the latest."""
    return await _after_attempt(session, delivery_id, attempt, next_attempt_at=at, last_error=error[:ERROR_LENGTH])


async def mark_failed(session: AsyncSession, delivery_id: int, attempt: int, error: str) -> bool:
    """Give up after attempt number `attempt` (refused, or the budget spent); False when it is no longer the latest."""
    return await _after_attempt(
        session, delivery_id, attempt, status=DeliveryStatus.FAILED, last_error=error[:ERROR_LENGTH]
    )


async def _after_attempt(session: AsyncSession, delivery_id: int, attempt: int, **values: object) -> bool:
    # Only the attempt that holds the row may record its failure: a stale one (its lease ran out
    # and the row was claimed again, or delivered meanwhile) must not overwrite a newer state.
    result = await session.execute(
        update(PosDelivery)
        .where(
            PosDelivery.id == delivery_id,
            PosDelivery.status == DeliveryStatus.PENDING,
            PosDelivery.attempts == attempt,
        )
        .values(**values)
        .returning(PosDelivery.id),
        execution_options={"synchronize_session": False},
    )
    return result.first() is not None


async def retry(session: AsyncSession, delivery_id: int, now: datetime) -> PosDelivery | None:
    """Put a failed delivery back in the queue, due now with a fresh budget; None unless it was `failed`."""
    result = await session.scalars(
        update(PosDelivery)
        .where(PosDelivery.id == delivery_id, PosDelivery.status == DeliveryStatus.FAILED)
        .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now)
        .returning(PosDelivery),
        execution_options={"synchronize_session": False, "populate_existing": True},
    )
    return result.first()
