"""REST routes: kitchen stations, where a branch's lines are cooked and bumped (grill, fryer, drinks, expo).

Stations are per branch; the menu's categories and items are the chain's, so they name a
station by its `code` (`station`: an item's own over its category's), and each branch
routes that code to its own station of that code, or to its default station (the first
non-expo one by `position`) when it has none (server/domain/stations.py). A branch without
stations keeps one kitchen, as always. A kitchen display of a station (`station_id` on
the device) shows only its lines, on `branch:{b}:kitchen:{code}`.

A code is unique in its branch and never changes (channels and routes name it): make a new
station instead. A branch has at most one expo station. Managers manage their branch's
stations as they manage its devices; deleting one detaches its displays (their sockets
are closed, so they come back as whole-kitchen displays).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select, update

from channels import frames
from persistence.tables import Branch, Device, Station
from server.api.fields import PatchBody
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.domain.stations import CODE
from server.errors import ApiError, not_found
from server.validation import Input, RowId, invalid_field

router = ApiRouter("stations")

StationCode = Annotated[
    str,
    StringConstraints(pattern=f"^{CODE.pattern}$"),
    Field(description="a kitchen station code: a lower-case letter, then up to 31 lower-case letters, digits or _"),
]
StationName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


class StationOut(BaseModel):
    """A kitchen station of a branch."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    branch_id: int
    code: str = Field(description="unique in the branch; its displays' channel is branch:{b}:kitchen:{code}")
    name: str
    is_expo: bool = Field(description="the expo station sees every line and makes the order ready by its bump")
    position: int = Field(description="stations are listed by it; the first non-expo one is the default")
    created_at: datetime
    updated_at: datetime


class StationCreate(Input):
    """A new station of a branch."""

    model_config = ConfigDict(extra="forbid")

    branch_id: RowId
    code: StationCode
    name: StationName
    is_expo: bool = False
    position: int = Field(default=0, ge=0, le=10_000)


class StationUpdate(PatchBody):
    """A new name, place or expo role for a station (its code never changes)."""

    name: StationName | None = None
    is_expo: bool | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)


class StationQuery(PageQuery):
    """Filters of the station list."""

    branch_id: RowId | None = None


async def _load(call: Call[Any, Any]) -> Station:
    station_id = call.path_int("station_id")
    station = await call.session.get(Station, station_id)
    if station is None:
        raise not_found("station", station_id)
    call.require_visible("station", station_id, station.branch_id)
    return station


async def _require_one_expo(call: Call[Any, Any], branch_id: int, other_than: int | None = None) -> None:
    statement = select(Station.id).where(Station.branch_id == branch_id, Station.is_expo.is_(True))
    if other_than is not None:
        statement = statement.where(Station.id != other_than)
    expo = await call.session.scalar(statement.limit(1))
    if expo is not None:
        raise ApiError("conflict", "the branch has an expo station already", {"field": "is_expo", "station_id": expo})


@router.get(
    "/stations",
    "List kitchen stations",
    permission=Permission.DEVICES_READ,
    query=StationQuery,
    response=Page[StationOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_stations(call: Call[None, StationQuery]) -> Page[StationOut]:
    """The stations of the caller's branch (every branch's for admins), by branch, position and id."""
    statement = select(Station).order_by(Station.branch_id, Station.position, Station.id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(Station.branch_id == scope)
    if call.query.branch_id is not None:
        statement = statement.where(Station.branch_id == call.query.branch_id)
    rows, total = await fetch_page(call.session, statement, call.query)
    return Page[StationOut](
        items=[StationOut.model_validate(row) for row in rows],
        total=total,
        limit=call.query.limit,
        offset=call.query.offset,
    )


@router.get(
    "/stations/{station_id}",
    "Read a kitchen station",
    permission=Permission.DEVICES_READ,
    response=StationOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_station(call: Call[None, None]) -> StationOut:
    """One station."""
    return StationOut.model_validate(await _load(call))


@router.post(
    "/stations",
    "Create a kitchen station",
    permission=Permission.DEVICES_WRITE,
    body=StationCreate,
    response=StationOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid", "conflict"),
)
async def create_station(call: Call[StationCreate, None]) -> StationOut:
    """Add a station to a branch; `conflict` when the branch has a station of that code, or a second expo."""
    body = call.body
    call.principal.require_branch(body.branch_id)
    if await call.session.get(Branch, body.branch_id) is None:
        raise invalid_field("branch_id", f"branch {body.branch_id} does not exist")
    taken = await call.session.scalar(
        select(Station.id).where(Station.branch_id == body.branch_id, Station.code == body.code)
    )
    if taken is not None:
        raise ApiError(
            "conflict", f"the branch has a station {body.code} already", {"field": "code", "station_id": taken}
        )
    if body.is_expo:
        await _require_one_expo(call, body.branch_id)
    station = Station(**body.model_dump())
    call.session.add(station)
    await call.session.flush()
    return StationOut.model_validate(station)


@router.patch(
    "/stations/{station_id}",
    "Update a kitchen station",
    permission=Permission.DEVICES_WRITE,
    body=StationUpdate,
    response=StationOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def update_station(call: Call[StationUpdate, None]) -> StationOut:
    """Rename or reorder a station, or make it (or no longer) the branch's expo; open orders are routed by the new
    order of stations from their next move on."""
    station = await _load(call)
    changes = call.body.model_dump(exclude_unset=True)
    if changes.get("is_expo") and not station.is_expo:
        await _require_one_expo(call, station.branch_id, other_than=station.id)
    for name, value in changes.items():
        setattr(station, name, value)
    await call.session.flush()
    return StationOut.model_validate(station)


@router.delete(
    "/stations/{station_id}",
    "Delete a kitchen station",
    permission=Permission.DEVICES_WRITE,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def delete_station(call: Call[None, None]) -> None:
    """Delete a station: its lines go to the branch's default station, its bumps go, its displays become
    whole-kitchen displays (their sockets are closed with 1001, so that they say hello again)."""
    station = await _load(call)
    displays = await call.session.scalars(select(Device.id).where(Device.station_id == station.id))
    for device_id in displays.all():
        call.close_sockets(f"device:{device_id}", code=frames.GOING_AWAY, reason="station deleted; reconnect")
    await call.session.execute(update(Device).where(Device.station_id == station.id).values(station_id=None))
    await call.session.delete(station)
