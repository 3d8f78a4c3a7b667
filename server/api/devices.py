"""REST routes: devices, their one-time secrets, and kiosk-terminal pairing.

A device logs in at `/auth/device` with its id and a secret that is shown once, when the
device is created or its secret rotated; only the Argon2 hash is stored. Rotating bumps
`secret_version`, which revokes every token issued before. A kiosk charges through the
one payment terminal paired with it (`paired_terminal_id`, unique: a terminal serves one
kiosk). A kitchen display may belong to a station of its branch (`station_id`,
server/api/stations.py): it then shows only that station's lines; changing it closes the
display's sockets (1001) so that it says hello again for its new channel. Managers manage
the devices of their branch, staff read them, admins do both everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from channels import frames
from persistence.enums import DeviceKind
from persistence.tables import Branch, Device, Station
from server.api.fields import PatchBody
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.auth.passwords import generate_secret, hash_secret
from server.auth.permissions import Permission
from server.errors import ApiError, not_found
from server.validation import Input, RowId, invalid_field

router = ApiRouter("devices")

SECRET_NOTICE = "The secret is shown only in this response; it cannot be read again, only rotated."


class DeviceOut(BaseModel):
    """A device as the admin tools see it (never its secret or the secret's hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    branch_id: int
    kind: DeviceKind
    name: str
    is_active: bool
    secret_version: int
    paired_terminal_id: int | None = Field(description="for kiosks: the payment terminal it charges through")
    paired_kiosk_id: int | None = Field(default=None, description="for payment terminals: the kiosk paired with it")
    station_id: int | None = Field(
        default=None, description="for kitchen displays: the station whose lines it shows; null: the whole kitchen"
    )
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeviceWithSecret(DeviceOut):
    """A device and its new secret, which is shown this one time only."""

    secret: str = Field(description=SECRET_NOTICE + " Exchange it at POST /auth/device for a device token.")
    secret_notice: str = Field(default=SECRET_NOTICE, description="a reminder that the secret is not shown again")


class DeviceCreate(Input):
    """A new device of a branch."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    branch_id: RowId
    kind: DeviceKind
    name: str = Field(min_length=1, max_length=120)
    station_id: RowId | None = Field(default=None, description="a kitchen display's station, of its branch")


class DeviceUpdate(PatchBody):
    """The fields of a device that may change; only those sent are applied."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    clearable = frozenset({"station_id"})

    name: str | None = Field(default=None, min_length=1, max_length=120)
    is_active: bool | None = None
    station_id: RowId | None = Field(default=None, description="a kitchen display's station; null: the whole kitchen")


class DeviceQuery(PageQuery):
    """Filters of the device list."""

    branch_id: RowId | None = None
    kind: DeviceKind | None = None
    is_active: bool | None = None


class PairIn(Input):
    """The payment terminal to pair with a kiosk."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: RowId
    force: bool = Field(default=False, description="take the terminal away from the kiosk it is paired with now")


async def _load(call: Call[Any, Any]) -> Device:
    """The device of the path, if it exists and lies in the caller's branch."""
    device_id = call.path_int("device_id")
    device = await call.session.get(Device, device_id)
    if device is None:
        raise not_found("device", device_id)
    call.require_visible("device", device_id, device.branch_id)
    return device


async def _check_station(call: Call[Any, Any], branch_id: int, kind: DeviceKind, station_id: int | None) -> None:
    """`invalid` unless the station is None, or one of the branch's and the device a kitchen display."""
    if station_id is None:
        return
    if kind != DeviceKind.KITCHEN_DISPLAY:
        raise invalid_field("station_id", "only a kitchen display belongs to a station")
    station = await call.session.get(Station, station_id)
    if station is None or station.branch_id != branch_id:
        raise invalid_field("station_id", f"branch {branch_id} has no station {station_id}")


async def _outs(call: Call[Any, Any], devices: Sequence[Device]) -> list[DeviceOut]:
    """The devices as `DeviceOut`, each terminal with the kiosk that holds it (one query for all)."""
    terminal_ids = [device.id for device in devices if device.kind == DeviceKind.PAYMENT_TERMINAL]
    kiosk_of: dict[int, int] = {}
    if terminal_ids:
        rows = await call.session.execute(
            select(Device.paired_terminal_id, Device.id).where(Device.paired_terminal_id.in_(terminal_ids))
        )
        kiosk_of = {terminal_id: kiosk_id for terminal_id, kiosk_id in rows if terminal_id is not None}
    outs = []
    for device in devices:
        out = DeviceOut.model_validate(device)
        out.paired_kiosk_id = kiosk_of.get(device.id)
        outs.append(out)
    return outs


async def _out(call: Call[Any, Any], device: Device) -> DeviceOut:
    """One device as `DeviceOut`, its pending changes written first so that id and timestamps are set."""
    await call.session.flush()
    return (await _outs(call, [device]))[0]


async def _new_secret() -> tuple[str, str]:
    """A fresh device secret and its Argon2 hash."""
    secret = generate_secret()
    return secret, await hash_secret(secret)


@router.get(
    "/devices",
    "List devices",
    permission=Permission.DEVICES_READ,
    query=DeviceQuery,
    response=Page[DeviceOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_devices(call: Call[None, DeviceQuery]) -> Page[DeviceOut]:
    """The devices of the caller's branch (all branches for admins), by id; filters narrow it further."""
    statement = select(Device).order_by(Device.id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(Device.branch_id == scope)
    if call.query.branch_id is not None:
        statement = statement.where(Device.branch_id == call.query.branch_id)
    if call.query.kind is not None:
        statement = statement.where(Device.kind == call.query.kind)
    if call.query.is_active is not None:
        statement = statement.where(Device.is_active == call.query.is_active)
    devices, total = await fetch_page(call.session, statement, call.query)
    items = await _outs(call, devices)
    return Page[DeviceOut](items=items, total=total, limit=call.query.limit, offset=call.query.offset)


@router.post(
    "/devices",
    "Create a device",
    permission=Permission.DEVICES_WRITE,
    body=DeviceCreate,
    response=DeviceWithSecret,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid"),
)
async def create_device(call: Call[DeviceCreate, None]) -> DeviceWithSecret:
    """Create a device and return it with its secret, which is shown only this once."""
    call.principal.require_branch(call.body.branch_id)
    if await call.session.get(Branch, call.body.branch_id) is None:
        raise invalid_field("branch_id", f"branch {call.body.branch_id} does not exist")
    await _check_station(call, call.body.branch_id, call.body.kind, call.body.station_id)
    secret, secret_hash = await _new_secret()
    device = Device(
        branch_id=call.body.branch_id,
        kind=call.body.kind,
        name=call.body.name,
        secret_hash=secret_hash,
        station_id=call.body.station_id,
    )
    call.session.add(device)
    return DeviceWithSecret(**(await _out(call, device)).model_dump(), secret=secret)


@router.get(
    "/devices/{device_id}",
    "Read a device",
    permission=Permission.DEVICES_READ,
    response=DeviceOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_device(call: Call[None, None]) -> DeviceOut:
    """One device."""
    return await _out(call, await _load(call))


@router.patch(
    "/devices/{device_id}",
    "Update a device",
    permission=Permission.DEVICES_WRITE,
    body=DeviceUpdate,
    response=DeviceOut,
    errors=("unauthorized", "forbidden", "not_found", "invalid"),
)
async def update_device(call: Call[DeviceUpdate, None]) -> DeviceOut:
    """Rename a device or switch it on or off; only the fields sent change."""
    device = await _load(call)
    changes = call.body.model_dump(exclude_unset=True)
    moved = "station_id" in changes and changes["station_id"] != device.station_id
    if moved:
        await _check_station(call, device.branch_id, device.kind, changes["station_id"])
    if device.is_active and changes.get("is_active") is False:
        call.close_sockets(f"device:{device.id}", code=frames.FORBIDDEN, reason="device disabled")
    elif moved:
        # Its channels change with its station: it says hello again to get them.
        call.close_sockets(f"device:{device.id}", code=frames.GOING_AWAY, reason="station changed; reconnect")
    for name, value in changes.items():
        setattr(device, name, value)
    return await _out(call, device)


@router.post(
    "/devices/{device_id}/rotate-secret",
    "Rotate a device's secret",
    permission=Permission.DEVICES_WRITE,
    response=DeviceWithSecret,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def rotate_secret(call: Call[None, None]) -> DeviceWithSecret:
    """Give the device a new secret, shown only this once; the old secret and every token issued before stop working."""
    device = await _load(call)
    secret, device.secret_hash = await _new_secret()
    device.secret_version += 1
    call.close_sockets(f"device:{device.id}", code=frames.UNAUTHORIZED, reason="device secret rotated")
    return DeviceWithSecret(**(await _out(call, device)).model_dump(), secret=secret)


@router.post(
    "/devices/{device_id}/disable",
    "Disable a device",
    permission=Permission.DEVICES_WRITE,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def disable_device(call: Call[None, None]) -> None:
    """Refuse the device's logins and tokens until it is enabled again; its data and pairing stay."""
    device = await _load(call)
    device.is_active = False
    call.close_sockets(f"device:{device.id}", code=frames.FORBIDDEN, reason="device disabled")


@router.post(
    "/devices/{device_id}/enable",
    "Enable a device",
    permission=Permission.DEVICES_WRITE,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def enable_device(call: Call[None, None]) -> None:
    """Let a disabled device log in again with its current secret."""
    (await _load(call)).is_active = True


@router.post(
    "/devices/{device_id}/pair",
    "Pair a kiosk with a payment terminal",
    permission=Permission.DEVICES_WRITE,
    body=PairIn,
    response=DeviceOut,
    errors=("unauthorized", "forbidden", "not_found", "invalid", "conflict"),
)
async def pair_terminal(call: Call[PairIn, None]) -> DeviceOut:
    """Make the terminal the kiosk's payment terminal (same branch); `force` takes it from another kiosk."""
    kiosk = await _load(call)
    if kiosk.kind != DeviceKind.KIOSK:
        raise ApiError("invalid", f"device {kiosk.id} is a {kiosk.kind}; only kiosks are paired", {"kind": kiosk.kind})
    terminal_id = call.body.terminal_id
    terminal = await call.session.get(Device, terminal_id)
    if terminal is None:
        raise invalid_field("terminal_id", f"device {terminal_id} does not exist")
    if terminal.kind != DeviceKind.PAYMENT_TERMINAL:
        raise invalid_field("terminal_id", f"device {terminal_id} is a {terminal.kind}, not a payment_terminal")
    if terminal.branch_id != kiosk.branch_id:
        raise invalid_field("terminal_id", f"device {terminal_id} belongs to another branch than the kiosk")

    holder = await call.session.scalar(
        select(Device).where(Device.paired_terminal_id == terminal_id, Device.id != kiosk.id)
    )
    if holder is not None:
        if not call.body.force:
            raise ApiError(
                "conflict",
                f"terminal {terminal_id} is paired with kiosk {holder.id}; send force=true to move it",
                {"kiosk_id": holder.id, "terminal_id": terminal_id},
            )
        holder.paired_terminal_id = None
        # The column is unique: the old pairing must be gone before the new one is written.
        await call.session.flush()
    kiosk.paired_terminal_id = terminal_id
    return await _out(call, kiosk)


@router.delete(
    "/devices/{device_id}/pair",
    "Unpair a kiosk and its terminal",
    permission=Permission.DEVICES_WRITE,
    errors=("unauthorized", "forbidden", "not_found", "invalid"),
)
async def unpair_terminal(call: Call[None, None]) -> None:
    """End the pairing of a kiosk, or of a terminal (from either side); nothing to end is fine."""
    device = await _load(call)
    if device.kind == DeviceKind.KIOSK:
        device.paired_terminal_id = None
    elif device.kind == DeviceKind.PAYMENT_TERMINAL:
        holder = await call.session.scalar(select(Device).where(Device.paired_terminal_id == device.id))
        if holder is not None:
            holder.paired_terminal_id = None
    else:
        raise ApiError("invalid", f"device {device.id} is a {device.kind}; only kiosks and terminals pair")
