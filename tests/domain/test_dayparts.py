"""Dayparts: a window of local wall time, crossing midnight or not, and the next moment one may open or close."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.dayparts import Window, all_open, inside, local_time, next_boundary

# No example database on disk, and no deadline: loading a time zone the first time may be slow.
pure = settings(database=None, deadline=None)

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago"]
BREAKFAST = Window("Breakfast", time(6), time(11))
LATE = Window("Late night", time(22), time(4))


def utc(text: str) -> datetime:
    """A UTC moment from an ISO string without offset."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "local", "expected"),
    [
        (BREAKFAST, time(5, 59, 59), False),
        (BREAKFAST, time(6), True),
        (BREAKFAST, time(10, 59), True),
        (BREAKFAST, time(11), False),
        (LATE, time(21, 59), False),
        (LATE, time(22), True),
        (LATE, time(0), True),
        (LATE, time(3, 59), True),
        (LATE, time(4), False),
        (Window("All day", time(5), time(5)), time(4, 59), True),
    ],
)
def test_a_window_holds_its_start_and_not_its_end_and_may_cross_midnight(
    window: Window, local: time, expected: bool
) -> None:
    """[start, end): breakfast holds 06:00 and not 11:00; late night holds midnight; equal ends are the whole day."""
    assert window.contains(local) is expected


def test_a_window_is_labelled_with_its_name_and_hours() -> None:
    """The label a kiosk shows names the window and its hours."""
    assert BREAKFAST.label == "Breakfast: 06:00–11:00"


def test_the_first_closed_window_is_named_and_none_when_all_are_open() -> None:
    """07:30 in Berlin (06:30 UTC in winter) is breakfast time, not late night; no window is always open."""
    moment = utc("2026-12-07T06:30")
    assert all_open([BREAKFAST, None], moment, "Europe/Berlin") is None
    assert all_open([None, LATE, BREAKFAST], moment, "Europe/Berlin") == LATE
    assert all_open([BREAKFAST], moment, "America/New_York") == BREAKFAST  # 01:30 there


@pytest.mark.parametrize(
    ("after", "zone", "expected"),
    [
        # 10:00 in Berlin (CET): breakfast ends at 11:00 local, 10:00 UTC.
        ("2026-12-07T09:00", "Europe/Berlin", "2026-12-07T10:00"),
        # Exactly at a boundary: the next one, not the same.
        ("2026-12-07T10:00", "Europe/Berlin", "2026-12-08T05:00"),
        # Spring forward in Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 06:00 is then 04:00 UTC.
        ("2026-03-29T00:30", "Europe/Berlin", "2026-03-29T01:00"),
        ("2026-03-29T01:00", "Europe/Berlin", "2026-03-29T04:00"),
    ],
)
def test_the_next_boundary_is_the_next_wall_time_reached_or_clock_change(after: str, zone: str, expected: str) -> None:
    """Boundaries at 06:00 and 11:00: the next is the first later moment the branch's clock shows one, or changes."""
    assert next_boundary([time(6), time(11)], utc(after), zone) == utc(expected)


def test_a_window_opening_in_the_skipped_hour_opens_at_the_skip() -> None:
    """Opening at 02:30 on the night Berlin skips 02:00-03:00: the clock passes 02:30 at the skip, 01:00 UTC."""
    assert next_boundary([time(2, 30)], utc("2026-03-28T23:00"), "Europe/Berlin") == utc("2026-03-29T01:00")


def test_a_repeated_wall_time_is_reached_twice() -> None:
    """On 25 October 2026 Berlin shows 02:30 twice: at 00:30 UTC (CEST) and at 01:30 UTC (CET), with the clock
    change at 01:00 UTC between them."""
    first = next_boundary([time(2, 30)], utc("2026-10-25T00:00"), "Europe/Berlin")
    assert first == utc("2026-10-25T00:30")
    change = next_boundary([time(2, 30)], first, "Europe/Berlin")
    assert change == utc("2026-10-25T01:00")
    assert next_boundary([time(2, 30)], change, "Europe/Berlin") == utc("2026-10-25T01:30")


def test_no_boundaries_no_next_one() -> None:
    """A branch without windows never needs waking."""
    assert next_boundary([], utc("2026-12-07T09:00"), "UTC") is None


@pure
@given(
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
    zone=st.sampled_from(ZONES),
    start=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    end=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    fractions=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=20),
)
def test_a_window_neither_opens_nor_closes_before_the_next_boundary(
    after: datetime, zone: str, start: time, end: time, fractions: list[float]
) -> None:
    """Between a moment and the next boundary of a window, the window is open throughout or closed throughout; the
    next boundary is at most a day and a clock change away."""
    boundary = next_boundary([start, end], after, zone)
    assert boundary is not None
    assert after < boundary <= after + timedelta(hours=27)
    state = inside(start, end, local_time(after, zone))
    for fraction in fractions:
        # timedelta rounds to microseconds: a fraction just below 1 may land on the boundary itself.
        moment = min(after + (boundary - after) * fraction, boundary - timedelta(microseconds=1))
        assert inside(start, end, local_time(moment, zone)) is state
