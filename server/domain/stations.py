"""Kitchen stations: which station each line of an order goes to, and when the stations are done with an order.

A branch's kitchen is its stations, in `position` order (then id). A line goes to the
station whose code it names: the item's own code, else its category's (`catalogue_code`).
A code the branch has no station for, and no code at all, go to the branch's default
station: its first non-expo station (its first station when all are expo), so no line
is ever lost. A branch without stations routes nothing: its one kitchen sees every line.

Routing is per entry, through a function giving each entry's code, so that anything that
carries a code (an order line, a part of a combo) is routed the same way: a combo's line is
made where each of its components goes, so the grill makes its sandwich while the drinks
station pours its cola. The expo station,
where a branch has one, sees every line of every order and decides when it is ready;
without expo, an order is ready once every station with lines of it has bumped it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# A station's code: what channel names and item routes say (`branch:1:kitchen:grill`).
CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def valid_code(code: str) -> bool:
    """Whether `code` is a station code: a lower-case letter, then up to 31 lower-case letters, digits or `_`."""
    return CODE.fullmatch(code) is not None


def line_codes(station: str | None, components: Iterable[Mapping[str, Any]]) -> list[str | None]:
    """The station codes an order line is made at: each of a combo's components goes where its own item's code
    says (`station` kept on each at placement), any other line where its own `station` says."""
    return [component.get("station") for component in components] or [station]


def catalogue_code(item_code: str | None, category_code: str | None) -> str | None:
    """The station code an item's lines go to: its own, else its category's (None: the default station)."""
    return item_code or category_code


@dataclass(frozen=True)
class KitchenStation:
    """A station of one branch."""

    id: int
    code: str
    is_expo: bool = False
    position: int = 0
    # What the kitchen calls it ("Grill"); the code is what lines and channels name.
    name: str = ""


@dataclass(frozen=True)
class Kitchen:
    """The stations of one branch, first the first in `position` order (then id)."""

    stations: tuple[KitchenStation, ...] = ()

    @classmethod
    def of(cls, stations: Iterable[KitchenStation]) -> Kitchen:
        """The kitchen of these stations, in their order."""
        return cls(tuple(sorted(stations, key=lambda station: (station.position, station.id))))

    def __bool__(self) -> bool:
        """Whether the branch has stations at all."""
        return bool(self.stations)

    @property
    def expo(self) -> KitchenStation | None:
        """The expo station, None where the branch has none (the first one, should there be several)."""
        return next((station for station in self.stations if station.is_expo), None)

    @property
    def default(self) -> KitchenStation | None:
        """Where a line with no code, or a code without a station, goes: the first non-expo station (the first
        station when all are expo); None without stations."""
        cooking = [station for station in self.stations if not station.is_expo] or list(self.stations)
        return cooking[0] if cooking else None

    def by_code(self, code: str) -> KitchenStation | None:
        """The station with this code, None when the branch has none."""
        return next((station for station in self.stations if station.code == code), None)

    def station_for(self, code: str | None) -> KitchenStation | None:
        """The station a line with this code goes to; None only without stations."""
        return (self.by_code(code) if code else None) or self.default

    def route(self, entries: Iterable[T], code_of: Callable[[T], str | None]) -> dict[str, list[T]]:
        """Each station's entries, by station code, in the entries' order; stations without entries are left out,
        and so is everything in a branch without stations."""
        routed: dict[str, list[T]] = {}
        for entry in entries:
            station = self.station_for(code_of(entry))
            if station is not None:
                routed.setdefault(station.code, []).append(entry)
        return routed

    def working(self, line_codes: Iterable[str | None]) -> list[KitchenStation]:
        """The stations an order with lines of these codes is made at, in station order: those its lines go to,
        and the expo station, which sees every order."""
        codes = {station.code for code in line_codes if (station := self.station_for(code)) is not None}
        return [station for station in self.stations if station.code in codes or station is self.expo]

    def ready(self, line_codes: Iterable[str | None], bumped: Collection[str]) -> bool:
        """Whether the bumps (station codes) make the order ready: the expo station's bump where the branch has one,
        otherwise the bumps of every station its lines go to. Never without stations."""
        expo = self.expo
        if expo is not None:
            return expo.code in bumped
        working = self.working(line_codes)
        return bool(working) and all(station.code in bumped for station in working)
