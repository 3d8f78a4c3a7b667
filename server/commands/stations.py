"""Kitchen station commands: a station's display bumps its part of an order (or takes the bump back).

A bump starts a paid order (the kitchen is on it) and, when it is the last one the order
waits for (every station with lines of it, or the expo station where the branch has one;
server/domain/stations.py), makes it ready through the same moves as `order.start` and
`order.ready`, so the board and the kiosk hear of it as always. Each bump raises the
order's version, so that a station's display keeps the newest ticket as it keeps orders.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from persistence.enums import OrderStatus
from persistence.order_records import OrderRecord, update_order
from server.commands.kitchen import KITCHEN
from server.commands.orders import load_order
from server.commands.router import CommandContext, CommandRegistry
from server.domain.order_states import OrderAction
from server.domain.stations import CODE, Kitchen, KitchenStation, line_codes
from server.errors import ApiError
from server.orders import station_progress
from server.orders.order_changes import conflict, move
from server.payloads.station import StationTicket, station_tickets
from server.validation import Input, RowId, invalid_field

registry = CommandRegistry()

_BUMPABLE = (OrderStatus.PAID, OrderStatus.PREPARING)


class StationRef(Input):
    """An order, at one station."""

    order_id: RowId
    station: str | None = Field(
        default=None,
        pattern=f"^{CODE.pattern}$",
        description="the station's code: a station's display may leave it out (its own), others must name it",
    )


def _station_code(ctx: CommandContext, data: StationRef) -> str:
    """The station the command is for: a station display's own, or the one named."""
    own = ctx.principal.station
    if data.station is None:
        if own is None:
            raise invalid_field("station", "name the station: the sender belongs to none")
        return own
    if own is not None and data.station != own:
        raise ApiError("forbidden", f"this display belongs to station {own}", {"station": data.station})
    return data.station


_AtStation = tuple[OrderRecord, Kitchen, KitchenStation, station_progress.Bumps]


async def _at_station(ctx: CommandContext, data: StationRef) -> _AtStation:
    """The order (locked), its branch's kitchen, the station and the order's bumps; `not_found` or `conflict` when the
    station has no part of the order."""
    code = _station_code(ctx, data)
    order = await load_order(ctx, data.order_id)
    kitchen, bumps = await station_progress.read_progress(ctx.session, order.branch_id, order.id)
    station = kitchen.by_code(code)
    if station is None:
        raise ApiError("not_found", f"no station {code} in branch {order.branch_id}", {"station": code})
    if not station_progress.routed(order) or station not in kitchen.working(_codes(order)):
        raise ApiError(
            "conflict", f"station {code} has no part of order {order.id}", {"order_id": order.id, "station": code}
        )
    return order, kitchen, station, bumps


async def _touch(ctx: CommandContext, order: OrderRecord) -> OrderRecord:
    """The order with its version raised: its kitchen progress changed (it is locked, so it is still as read)."""
    touched = await update_order(ctx.session, order.id, {"updated_at": ctx.now()}, where={"status": order.status})
    assert touched is not None  # locked by load_order: nothing moved it since
    return touched


@registry.command(
    "station.bump",
    StationRef,
    who=KITCHEN,
    summary="Mark a station's part of an order done",
    reply=StationTicket,
    errors=("not_found", "conflict", "forbidden", "invalid"),
)
async def bump_station(ctx: CommandContext, data: StationRef) -> dict[str, Any]:
    """Bump the station's part of a paid or preparing order: the order is started if still paid, and made ready when
    no station it waits for is left; bumping again changes nothing."""
    order, kitchen, station, bumps = await _at_station(ctx, data)
    if station.id in bumps:
        return station_tickets(order, kitchen, bumps)[station.code]
    if order.status not in _BUMPABLE:
        raise conflict(order, f"order {order.id} is {order.status.value}: only a paid or preparing order is bumped")
    now = ctx.now()
    await station_progress.bump(ctx.session, order.id, station.id, now)
    bumps[station.id] = now
    if order.status == OrderStatus.PAID:
        order = await move(ctx.session, order, OrderAction.START, ctx.emit)
    else:
        order = await _touch(ctx, order)
    tickets = station_progress.emit_tickets(ctx.emit, order, kitchen, bumps, "station.bumped")
    bumped = {s.code for s in kitchen.stations if s.id in bumps}
    if kitchen.ready(_codes(order), bumped):
        order = await move(ctx.session, order, OrderAction.READY, ctx.emit)
        tickets = station_tickets(order, kitchen, bumps)
    return tickets[station.code]


@registry.command(
    "station.recall",
    StationRef,
    who=KITCHEN,
    summary="Take back a station's bump of an order still preparing",
    reply=StationTicket,
    errors=("not_found", "conflict", "forbidden", "invalid"),
)
async def recall_station(ctx: CommandContext, data: StationRef) -> dict[str, Any]:
    """Take the station's bump of a preparing order back (it has more to do); a ready order is recalled whole with
    `order.recall`. A station that had not bumped it changes nothing."""
    order, kitchen, station, bumps = await _at_station(ctx, data)
    if station.id not in bumps:
        return station_tickets(order, kitchen, bumps)[station.code]
    if order.status != OrderStatus.PREPARING:
        raise conflict(
            order,
            f"order {order.id} is {order.status.value}: only a preparing order's bump is taken back "
            "(a ready order is recalled whole with order.recall)",
        )
    await station_progress.unbump(ctx.session, order.id, station.id)
    del bumps[station.id]
    order = await _touch(ctx, order)
    return station_progress.emit_tickets(ctx.emit, order, kitchen, bumps, "station.recalled")[station.code]


def _codes(order: OrderRecord) -> list[str | None]:
    """The station codes the order's lines are made at."""
    return [code for line in order.lines for code in line_codes(line.station, line.components)]
