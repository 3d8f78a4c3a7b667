"""A branch's business day: the calendar date in its own time zone, which order numbers restart with."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def business_date(at: datetime, time_zone: str) -> date:
    """The date it is in `time_zone` at the (timezone-aware) moment `at`."""
    if at.tzinfo is None:
        raise ValueError("a business date needs a timezone-aware moment")
    return at.astimezone(ZoneInfo(time_zone)).date()
