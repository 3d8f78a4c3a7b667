"""An order as one kitchen station sees it: a ticket of only the station's lines, with every station's progress.

On `branch:{b}:kitchen:{station}` (PROTOCOL additions in docs/protocol.md "Kitchen
stations"): the order's fields as everywhere, `lines` cut to those routed to the station
(every line for the expo station), `station` and its `bumped_at`, and `stations`, the bump
of every station working on the order, so that a display can show what it waits for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.domain.stations import Kitchen, KitchenStation, line_codes
from server.payloads.moment import Moment
from server.payloads.order import AnyOrder, OrderView, order_data


class StationProgress(BaseModel):
    """Where one station working on an order is with it."""

    model_config = ConfigDict(extra="forbid")

    station: str = Field(description="the station's code")
    is_expo: bool
    bumped_at: Moment | None = Field(description="when it bumped its part of the order; null: not done")


class StationTicket(OrderView):
    """The order on one station's kitchen channel: `lines` are only the station's (all of them at expo)."""

    station: str = Field(description="the station whose ticket this is")
    bumped_at: Moment | None = Field(description="when this station bumped the order; null: still to do")
    stations: list[StationProgress] = Field(description="every station working on the order, in station order")


def station_tickets(
    order: AnyOrder, kitchen: Kitchen, bumps: Mapping[int, datetime], data: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Each working station's ticket of the order as JSON data, by station code (`bumps`: bump moments by station
    id; `data`: the order's `order_data`, when already made)."""
    whole = data if data is not None else order_data(order)
    routed = _station_lines(kitchen, whole["lines"])
    codes = [code for line in whole["lines"] for code in line_codes(line["station"], line["components"])]
    working = kitchen.working(codes)
    progress = [_progress(station, bumps) for station in working]
    return {
        station.code: whole
        | {
            "lines": whole["lines"] if station.is_expo else routed.get(station.code, []),
            "station": station.code,
            "bumped_at": progress[n]["bumped_at"],
            "stations": progress,
        }
        for n, station in enumerate(working)
    }


def _progress(station: KitchenStation, bumps: Mapping[int, datetime]) -> dict[str, Any]:
    bumped = bumps.get(station.id)
    return StationProgress(station=station.code, is_expo=station.is_expo, bumped_at=bumped).model_dump(mode="json")


def _station_lines(kitchen: Kitchen, lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each station's lines, by code: a combo's line at every station one of its components goes to, with only
    those components; any other line at its own station."""
    routed: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line["components"]:
            for code, components in kitchen.route(line["components"], lambda part: part.get("station")).items():
                routed.setdefault(code, []).append(line | {"components": components})
        elif (station := kitchen.station_for(line["station"])) is not None:
            routed.setdefault(station.code, []).append(line)
    return routed
