"""UTCDateTime hands the code the same aware UTC datetimes on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import StatementError

from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import DeadlineKind
from persistence.tables import Branch, Deadline

BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = timezone(timedelta(hours=5, minutes=30))


async def _add_deadline(db: Database, ref_id: int, due_at: datetime) -> None:
    async with db.session() as session:
        session.add(Deadline(kind=DeadlineKind.PAYMENT, ref_id=ref_id, due_at=due_at))


async def test_an_aware_time_reads_back_as_the_same_instant_in_utc(db: Database) -> None:
    """A time written in another zone comes back aware, in UTC, to the microsecond."""
    written = datetime(2026, 3, 29, 3, 30, 15, 123456, tzinfo=BERLIN)
    await _add_deadline(db, 1, written)

    async with db.session() as session:
        read = await session.scalar(select(Deadline.due_at))
    assert read is not None
    assert read.tzinfo is UTC
    assert read == written
    assert read == datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)


async def test_times_from_different_zones_sort_and_filter_by_instant(db: Database) -> None:
    """Ordering and comparing in SQL follow the instant, not the wall clock it was written in."""
    # 10:00 in Kolkata is 04:30 UTC, before 09:00 in Berlin (07:00 UTC) though its wall clock is later.
    await _add_deadline(db, 1, datetime(2026, 7, 1, 9, 0, tzinfo=BERLIN))
    await _add_deadline(db, 2, datetime(2026, 7, 1, 10, 0, tzinfo=KOLKATA))

    async with db.session() as session:
        in_order = await session.scalars(select(Deadline.ref_id).order_by(Deadline.due_at))
        assert list(in_order) == [2, 1]
        due_by_six_utc = await session.scalars(
            select(Deadline.ref_id).where(Deadline.due_at <= datetime(2026, 7, 1, 6, 0, tzinfo=UTC))
        )
        assert list(due_by_six_utc) == [2]


async def test_a_naive_datetime_is_refused_and_nothing_is_stored(db: Database) -> None:
    """Writing a datetime without a zone raises instead of guessing one."""
    with pytest.raises(StatementError) as raised:
        await _add_deadline(db, 1, datetime(2026, 1, 1, 12, 0))
    assert isinstance(raised.value.orig, ValueError)

    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Deadline)) == 0


async def test_a_database_set_timestamp_reads_back_aware_utc(db: Database) -> None:
    """`created_at` filled by the database's CURRENT_TIMESTAMP comes back aware UTC and current."""
    before = utcnow().replace(microsecond=0)
    async with db.session() as session:
        await session.execute(
            text(
                "INSERT INTO branches (name, currency, timezone, tax_rate_bp, is_active) "
                "VALUES ('Alpha', 'EUR', 'UTC', 0, :is_active)"
            ),
            {"is_active": True},
        )

    async with db.session() as session:
        created_at = await session.scalar(select(Branch.created_at))
    assert created_at is not None
    assert created_at.tzinfo is UTC
    assert before - timedelta(seconds=1) <= created_at <= utcnow() + timedelta(seconds=1)
