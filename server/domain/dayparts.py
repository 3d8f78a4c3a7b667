"""Dayparts: whether a branch's local time is inside a window of the day, and when the next window opens or closes.

A window is [starts_at, ends_at) of wall-clock time in the branch's time zone; one whose end is
before its start crosses midnight (22:00-04:00), one whose end equals its start is the whole
day. Pure functions of a moment and a time zone name, so that clock changes (DST) are the time
zone database's: a window opening at 02:30 on the night the clocks skip from 02:00 to 03:00
opens at the skip, and the hour repeated in autumn is inside or outside as its wall time says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Window:
    """A named window of local time, e.g. Breakfast 06:00-11:00."""

    name: str
    starts_at: time
    ends_at: time

    def contains(self, local: time) -> bool:
        """Whether this local wall time is inside the window."""
        return inside(self.starts_at, self.ends_at, local)

    @property
    def label(self) -> str:
        """The window as a kiosk names it: "Breakfast: 06:00–11:00"."""
        return f"{self.name}: {self.starts_at:%H:%M}–{self.ends_at:%H:%M}"

    def data(self) -> dict[str, str]:
        """The window as JSON data: `name`, `starts_at` and `ends_at` (HH:MM, the branch's local time)."""
        return {"name": self.name, "starts_at": f"{self.starts_at:%H:%M}", "ends_at": f"{self.ends_at:%H:%M}"}


def inside(starts_at: time, ends_at: time, local: time) -> bool:
    """Whether `local` is in [starts_at, ends_at), crossing midnight when `ends_at` is before `starts_at`."""
    if starts_at == ends_at:
        return True
    if starts_at < ends_at:
        return starts_at <= local < ends_at
    return local >= starts_at or local < ends_at


@cache
def zone(name: str) -> ZoneInfo:
    """The time zone of this IANA name (cached: branches name few)."""
    return ZoneInfo(name)


def local_time(moment: datetime, timezone: str) -> time:
    """The wall-clock time in `timezone` at this aware moment."""
    return moment.astimezone(zone(timezone)).time().replace(tzinfo=None)


def all_open(windows: Iterable[Window | None], moment: datetime, timezone: str) -> Window | None:
    """The first of these windows (None: no window) that does not hold the branch's time at `moment`; None when all
    do, i.e. when what they restrict can be sold."""
    local = local_time(moment, timezone)
    return next((w for w in windows if w is not None and not w.contains(local)), None)


def _transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The moments in (start, end] when the zone's UTC offset changes, to the second (clocks change on the second, at
    most once an hour anywhere)."""

    def offset(seconds: int) -> timedelta | None:
        return datetime.fromtimestamp(seconds, tz).utcoffset()

    found = []
    here, last = int(start.timestamp()), int(end.timestamp())
    while here < last:
        there = min(here + 3600, last)
        if offset(here) != offset(there):
            low, high = here, there  # low has the old offset, high the new one
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            found.append(datetime.fromtimestamp(high, UTC))
        here = there
    return found


def next_boundary(boundaries: Iterable[time], after: datetime, timezone: str) -> datetime | None:
    """The first moment strictly after `after` (aware) at which the branch's wall clock reaches one of these local
    times, or jumps (a clock change, which can move it across one): the next moment a window with these
    boundaries may open or close. None without boundaries. In UTC."""
    wanted = set(boundaries)
    if not wanted:
        return None
    tz = zone(timezone)
    after = after.astimezone(UTC)
    today = after.astimezone(tz).date()
    candidates = _transitions(tz, after, after + timedelta(days=2))
    for days in range(-1, 3):
        day = today + timedelta(days=days)
        for boundary in wanted:
            for fold in (0, 1):
                wall = datetime.combine(day, boundary, tzinfo=tz).replace(fold=fold)
                moment = wall.astimezone(UTC)
                # A wall time the clocks skip does not exist: the transition above is its moment.
                if moment.astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None, fold=0):
                    candidates.append(moment)
    later = [moment for moment in candidates if moment > after]
    return min(later) if later else None
