"""A branch's business day is the calendar date in its own time zone, daylight saving included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.business_day import business_date

# No example database on disk, and no deadline: loading a time zone the first time may be slow.
pure = settings(database=None, deadline=None)

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Asia/Kolkata", "Pacific/Kiritimati"]


def utc(text: str) -> datetime:
    """A UTC moment from an ISO string without offset."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        ("2026-11-26T23:30", "Europe/Berlin", date(2026, 11, 27)),  # 00:30 CET
        ("2026-11-26T23:30", "America/New_York", date(2026, 11, 26)),  # 18:30 EST
        ("2026-11-26T23:30", "UTC", date(2026, 11, 26)),
        ("2026-11-26T15:00", "Asia/Tokyo", date(2026, 11, 27)),  # 00:00 JST, midnight belongs to the new day
        ("2026-11-26T14:59:59.999999", "Asia/Tokyo", date(2026, 11, 26)),
        ("2026-11-26T18:29", "Asia/Kolkata", date(2026, 11, 26)),  # 23:59 IST, a half-hour offset
        ("2026-11-26T18:30", "Asia/Kolkata", date(2026, 11, 27)),
        ("2026-11-26T10:00", "Pacific/Kiritimati", date(2026, 11, 27)),  # UTC+14
    ],
)
def test_the_date_is_the_branch_local_date(moment: str, zone: str, expected: date) -> None:
    """The same moment is a different day in branches on different sides of midnight."""
    assert business_date(utc(moment), zone) == expected


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        # Berlin springs forward on 2026-03-29 (UTC+1 -> UTC+2): midnight moves from 23:00Z to 22:00Z.
        ("2026-03-28T22:30", "Europe/Berlin", date(2026, 3, 28)),  # 23:30 CET
        ("2026-03-28T23:30", "Europe/Berlin", date(2026, 3, 29)),  # 00:30 CET, the short day begins
        ("2026-03-29T21:59", "Europe/Berlin", date(2026, 3, 29)),  # 23:59 CEST
        ("2026-03-29T22:30", "Europe/Berlin", date(2026, 3, 30)),  # 00:30 CEST
        # Berlin falls back on 2026-10-25 (UTC+2 -> UTC+1): midnight moves from 22:00Z to 23:00Z.
        ("2026-10-24T22:30", "Europe/Berlin", date(2026, 10, 25)),  # 00:30 CEST
        ("2026-10-25T22:30", "Europe/Berlin", date(2026, 10, 25)),  # 23:30 CET, the long day goes on
        ("2026-10-25T23:00", "Europe/Berlin", date(2026, 10, 26)),
        # New York springs forward on 2026-03-08 (UTC-5 -> UTC-4).
        ("2026-03-08T04:30", "America/New_York", date(2026, 3, 7)),  # 23:30 EST
        ("2026-03-09T03:30", "America/New_York", date(2026, 3, 8)),  # 23:30 EDT
        ("2026-03-09T04:30", "America/New_York", date(2026, 3, 9)),  # 00:30 EDT
        # New York falls back on 2026-11-01 (UTC-4 -> UTC-5); 01:30 local happens twice.
        ("2026-11-01T05:30", "America/New_York", date(2026, 11, 1)),  # first 01:30 EDT
        ("2026-11-01T06:30", "America/New_York", date(2026, 11, 1)),  # second 01:30 EST
        ("2026-11-02T04:30", "America/New_York", date(2026, 11, 1)),  # 23:30 EST
        ("2026-11-02T05:00", "America/New_York", date(2026, 11, 2)),
    ],
)
def test_daylight_saving_change_days(moment: str, zone: str, expected: date) -> None:
    """On the days clocks change, local midnight moves in UTC and the business day follows it."""
    assert business_date(utc(moment), zone) == expected


def test_a_moment_in_any_offset_gives_the_same_day() -> None:
    """A moment expressed with a fixed offset is converted, not read as local wall time."""
    tokyo_morning = datetime(2026, 11, 27, 8, 0, tzinfo=timezone(timedelta(hours=9)))  # 2026-11-26T23:00Z
    assert business_date(tokyo_morning, "Europe/Berlin") == date(2026, 11, 27)
    assert business_date(tokyo_morning, "America/New_York") == date(2026, 11, 26)


def test_a_naive_moment_is_refused() -> None:
    """A datetime without a time zone is ambiguous and raises instead of being guessed."""
    with pytest.raises(ValueError):
        business_date(datetime(2026, 11, 26, 23, 30), "Europe/Berlin")


@pure
@given(
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)),
    st.sampled_from(ZONES),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_the_day_depends_on_the_moment_not_on_its_offset(moment: datetime, zone: str, offset_minutes: int) -> None:
    """The same instant written with any offset gives the same business day, at most a day off its UTC date."""
    shifted = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    day = business_date(moment, zone)
    assert business_date(shifted, zone) == day
    assert abs(day - moment.date()) <= timedelta(days=1)
    if zone == "UTC":
        assert day == moment.date()
