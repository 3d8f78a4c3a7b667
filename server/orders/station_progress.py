"""Each kitchen station's part of an order: its bump, and the tickets its kitchen channel hears of.

An order whose lines were routed to stations at placement (server/orders/line_stations.py)
is shown on each station's channel, `branch:{b}:kitchen:{station}`, cut to that station's
lines; every event the whole kitchen hears of it, the stations hear too, each with its own
ticket (server/payloads/station.py). A bump is a row of `order_stations`, written under the
order's lock, so two stations bumping at once are decided one after the other and exactly
one of them makes the order ready. An order without routed lines (a branch without
stations) costs nothing here: not one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels import names
from channels.unit_of_work import Emit
from persistence.base import table
from persistence.order_records import OrderRecord
from persistence.prepared import Prepared
from persistence.tables import OrderStation, Station
from server.domain.stations import Kitchen, KitchenStation
from server.payloads.order import AnyOrder, kitchen_event
from server.payloads.station import station_tickets

_STATIONS, _BUMPS = table(Station), table(OrderStation)
_STATION, _BUMP = _STATIONS.c, _BUMPS.c
# The branch's stations, each with its bump of the order (NULL: not bumped).
_PROGRESS = Prepared(
    select(_STATION.id, _STATION.code, _STATION.is_expo, _STATION.position, _BUMP.bumped_at)
    .select_from(
        _STATIONS.outerjoin(_BUMPS, and_(_BUMP.station_id == _STATION.id, _BUMP.order_id == bindparam("order_id")))
    )
    .where(_STATION.branch_id == bindparam("branch_id"))
)
_BUMP_IT = Prepared(
    insert(_BUMPS).values(
        order_id=bindparam("order_id"), station_id=bindparam("station_id"), bumped_at=bindparam("bumped_at")
    )
)
_UNBUMP = Prepared(
    delete(_BUMPS).where(_BUMP.order_id == bindparam("order_id"), _BUMP.station_id == bindparam("station_id"))
)
_FORGET = Prepared(delete(_BUMPS).where(_BUMP.order_id == bindparam("order_id")))

Bumps = dict[int, datetime]


def routed(order: AnyOrder) -> bool:
    """Whether the order's lines went to stations (its branch had stations when it was placed)."""
    return any(line.station is not None for line in order.lines)


async def read_progress(session: AsyncSession, branch_id: int, order_id: int) -> tuple[Kitchen, Bumps]:
    """The branch's stations and the order's bumps by station id, in one statement."""
    rows = await _PROGRESS.rows(session, {"branch_id": branch_id, "order_id": order_id})
    # No names: a bump needs only codes (the channel snapshot reads names through read_kitchen).
    kitchen = Kitchen.of(KitchenStation(row.id, row.code, row.is_expo, row.position) for row in rows)
    return kitchen, {row.id: row.bumped_at for row in rows if row.bumped_at is not None}


def emit_tickets(emit: Emit, order: AnyOrder, kitchen: Kitchen, bumps: Bumps, event: str) -> dict[str, dict[str, Any]]:
    """Emit `event` with each working station's ticket on its channel; the tickets, by station code."""
    tickets = station_tickets(order, kitchen, bumps)
    for code, data in tickets.items():
        emit(names.branch_station(order.branch_id, code), event, data)
    return tickets


async def after_move(session: AsyncSession, emit: Emit, order: OrderRecord, *, recalled: bool = False) -> None:
    """The stations' side of an order's move (made and announced already): a recall of the whole order takes back
    every station's bump, so each makes its part again; each station's kitchen hears the kitchen's event."""
    event = kitchen_event(order, recalled=recalled)
    if event is None or not routed(order):
        return
    if recalled:
        await _FORGET.execute(session, {"order_id": order.id})
    kitchen, bumps = await read_progress(session, order.branch_id, order.id)
    emit_tickets(emit, order, kitchen, bumps, event)


async def bump(session: AsyncSession, order_id: int, station_id: int, now: datetime) -> None:
    """Record the station's bump of the order (the order locked, the station not bumped yet)."""
    await _BUMP_IT.execute(session, {"order_id": order_id, "station_id": station_id, "bumped_at": now})


async def unbump(session: AsyncSession, order_id: int, station_id: int) -> None:
    """Take the station's bump of the order back."""
    await _UNBUMP.execute(session, {"order_id": order_id, "station_id": station_id})


async def bumps_of(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, Bumps]:
    """The bumps of these orders, by order id and then station id (for a station's snapshot)."""
    if not order_ids:
        return {}
    rows = await session.execute(
        select(_BUMP.order_id, _BUMP.station_id, _BUMP.bumped_at).where(_BUMP.order_id.in_(order_ids))
    )
    found: dict[int, Bumps] = {}
    for order_id, station_id, bumped_at in rows:
        found.setdefault(order_id, {})[station_id] = bumped_at
    return found
