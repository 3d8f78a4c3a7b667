"""REST routes: enrolment by pairing code, and one-step enrolment links.

A fresh app asks for a code (public, rate limited per address), shows it, and polls with its
poll token; someone with devices:write claims the code for a new device (or an existing one,
to enrol it again) in a branch they manage. The app's next poll answers the device's id and
a new secret, once. A link (`python -m server enrol-links`) carries a token that is redeemed
the same way, in one step. Nobody types or copies a secret.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from channels import frames
from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Branch, Device
from server.api.devices import DeviceOut, _check_station, _out
from server.api.routing import ApiRouter, Call
from server.auth.enrolment import PICKUP_TTL, Credentials, issue_code, live_code, new_token, pick_up
from server.auth.passwords import hash_secret
from server.auth.permissions import Permission
from server.errors import ApiError
from server.validation import Input, RowId, invalid_field

router = ApiRouter("enrolment")

# New codes a minute from one address: enough for a shop full of screens starting at once.
CODE_WINDOW_S = 60
CODE_LIMIT_FACTOR = 3
_CODE = re.compile(r"^[0-9]{6}$")


class PairingCodeOut(BaseModel):
    """A new pairing code: show `code`, keep `poll_token` to yourself and poll with it."""

    code: str = Field(description="six digits, for someone with devices:write to claim")
    poll_token: str = Field(description="only the app knows it; POST it to /pairing-codes/poll")
    expires_at: datetime


class PollIn(Input):
    """The token of the app's pairing code."""

    poll_token: str = Field(min_length=1, max_length=128)


class RedeemIn(Input):
    """The token of a one-step enrolment link (`#enrol=<token>`)."""

    token: str = Field(min_length=1, max_length=128)


class PendingOut(BaseModel):
    """Not claimed yet (answered with 202): poll again in a few seconds."""

    status: Literal["pending"] = "pending"
    expires_at: datetime


class CredentialsOut(BaseModel):
    """The enrolled device's id and its new secret, shown only in this response."""

    status: Literal["enrolled"] = "enrolled"
    device_id: int
    secret: str = Field(description="exchange it at POST /auth/device; it is not shown again")
    device_kind: DeviceKind
    branch_id: int
    name: str


class ClaimIn(Input):
    """The device the code enrols: a new one (`branch_id`, `kind`, `name`) or an existing one (`device_id`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    device_id: RowId | None = Field(default=None, description="enrol this existing device again (a new secret)")
    branch_id: RowId | None = None
    kind: DeviceKind | None = None
    name: str | None = Field(default=None, min_length=1, max_length=120)
    station_id: RowId | None = Field(default=None, description="a kitchen display's station, of its branch")
    paired_terminal_id: RowId | None = Field(default=None, description="a new kiosk's payment terminal")
    paired_kiosk_id: RowId | None = Field(default=None, description="the kiosk a new payment terminal serves")

    @model_validator(mode="after")
    def _one_way(self) -> ClaimIn:
        new = (self.branch_id, self.kind, self.name)
        if self.device_id is None and None in new:
            raise ValueError("name device_id, or branch_id, kind and name for a new device")
        if self.device_id is not None and any(value is not None for value in new):
            raise ValueError("device_id enrols an existing device: send no branch_id, kind or name with it")
        return self


class ClaimOut(BaseModel):
    """The claimed code and the device it enrols; the app gets the secret on its next poll."""

    code: str
    device: DeviceOut
    pickup_until: datetime = Field(description="the app must poll before this")


def _credentials(found: Credentials) -> CredentialsOut:
    device = found.device
    return CredentialsOut(
        device_id=device.id, secret=found.secret, device_kind=device.kind, branch_id=device.branch_id, name=device.name
    )


@router.post(
    "/pairing-codes",
    "Ask for a pairing code",
    public=True,
    response=PairingCodeOut,
    status_code=201,
    errors=("rate_limited",),
)
async def create_pairing_code(call: Call[None, None]) -> PairingCodeOut:
    """A six-digit code valid ten minutes, for a fresh app to show; the poll token stays with the app."""
    limit = call.services.settings.LOGIN_RATE_LIMIT * CODE_LIMIT_FACTOR
    wait = await call.services.rate_limiter.hit(f"pairing:addr:{call.client_address}", limit, CODE_WINDOW_S)
    if wait is not None:
        raise ApiError(
            "rate_limited",
            "too many pairing codes asked for; try again later",
            {"retry_after_s": round(wait)},
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    issued = await issue_code(call.session, utcnow(), call.client_address)
    assert issued.code is not None
    return PairingCodeOut(code=issued.code, poll_token=issued.token, expires_at=issued.expires_at)


@router.post(
    "/pairing-codes/poll",
    "Poll a pairing code",
    public=True,
    body=PollIn,
    response=CredentialsOut,
    also={202: PendingOut},
    errors=("not_found", "conflict"),
)
async def poll_pairing_code(call: Call[PollIn, None]) -> CredentialsOut | PendingOut:
    """202 `pending` until the code is claimed; then, once, the device's id and new secret (200).

    `conflict` with `details.reason` `expired` or `used`; `not_found` for an unknown token.
    """
    found = await pick_up(call.session, call.body.poll_token, utcnow())
    if isinstance(found, Credentials):
        _secret_changed(call, found.device)
        return _credentials(found)
    call.status_code = 202
    return PendingOut(expires_at=found.expires_at)


@router.post(
    "/pairing-codes/redeem",
    "Redeem an enrolment link",
    public=True,
    body=RedeemIn,
    response=CredentialsOut,
    errors=("not_found", "conflict"),
)
async def redeem_link(call: Call[RedeemIn, None]) -> CredentialsOut:
    """A one-step link's token for its device's id and a new secret (the old secret stops working)."""
    found = await pick_up(call.session, call.body.token, utcnow())
    if not isinstance(found, Credentials):
        # A pairing code's poll token is not a link: it would need a claim first.
        raise ApiError("conflict", "this token is a pairing code not claimed yet", {"reason": "pending"})
    _secret_changed(call, found.device)
    return _credentials(found)


def _secret_changed(call: Call[Any, Any], device: Device) -> None:
    # The device's earlier tokens stop working: a screen enrolled again replaces the old one.
    call.close_sockets(f"device:{device.id}", code=frames.UNAUTHORIZED, reason="device secret rotated")


@router.post(
    "/pairing-codes/{code}/claim",
    "Claim a pairing code",
    permission=Permission.DEVICES_WRITE,
    body=ClaimIn,
    response=ClaimOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "not_found", "invalid", "conflict"),
)
async def claim_pairing_code(call: Call[ClaimIn, None]) -> ClaimOut:
    """Enrol the app showing `code` as a new device of a branch (or as an existing device, with a new secret).

    `not_found` for an unknown code; `conflict` (`details.reason`: `expired`, `claimed`) for one no longer open.
    """
    code = call.request.path_params["code"]
    if not _CODE.match(code):
        raise ApiError("not_found", f"no pairing code {code}", {"resource": "pairing_code", "reason": "unknown"})
    now = utcnow()
    row = await live_code(call.session, code, now)
    body = call.body
    if body.device_id is not None:
        device = await call.session.get(Device, body.device_id)
        if device is None:
            raise invalid_field("device_id", f"device {body.device_id} does not exist")
        call.principal.require_branch(device.branch_id)
    else:
        device = await _new_device(call, body)
    await call.session.flush()
    row.device_id = device.id
    row.claimed_at = now
    row.claimed_by_user_id = call.principal.id if call.principal.kind == "user" else None
    row.expires_at = now + PICKUP_TTL
    return ClaimOut(code=code, device=await _out(call, device), pickup_until=row.expires_at)


async def _new_device(call: Call[ClaimIn, None], body: ClaimIn) -> Device:
    assert body.branch_id is not None and body.kind is not None and body.name is not None
    call.principal.require_branch(body.branch_id)
    if await call.session.get(Branch, body.branch_id) is None:
        raise invalid_field("branch_id", f"branch {body.branch_id} does not exist")
    await _check_station(call, body.branch_id, body.kind, body.station_id)
    # A secret nobody knows until the app picks up its own (server/auth/enrolment.py).
    device = Device(
        branch_id=body.branch_id,
        kind=body.kind,
        name=body.name,
        secret_hash=await hash_secret(new_token()),
        station_id=body.station_id,
    )
    call.session.add(device)
    await call.session.flush()
    if body.paired_terminal_id is not None:
        terminal = await _partner(call, "paired_terminal_id", body.paired_terminal_id, device, DeviceKind.KIOSK)
        await _pair(call, device, terminal)
    if body.paired_kiosk_id is not None:
        kiosk = await _partner(call, "paired_kiosk_id", body.paired_kiosk_id, device, DeviceKind.PAYMENT_TERMINAL)
        await _pair(call, kiosk, device)
    return device


async def _partner(call: Call[Any, Any], field: str, partner_id: int, device: Device, kind: DeviceKind) -> Device:
    """The kiosk or terminal `partner_id` of the new device's branch; `invalid` if it is no such thing."""
    if device.kind != kind:
        raise invalid_field(field, f"only a new {kind} takes {field}")
    partner = await call.session.get(Device, partner_id)
    wanted = DeviceKind.PAYMENT_TERMINAL if kind == DeviceKind.KIOSK else DeviceKind.KIOSK
    if partner is None or partner.branch_id != device.branch_id or partner.kind != wanted:
        raise invalid_field(field, f"branch {device.branch_id} has no {wanted} {partner_id}")
    return partner


async def _pair(call: Call[Any, Any], kiosk: Device, terminal: Device) -> None:
    """Pair `kiosk` with `terminal`; `conflict` when either is paired already."""
    holder = await call.session.scalar(select(Device).where(Device.paired_terminal_id == terminal.id))
    if holder is not None or kiosk.paired_terminal_id is not None:
        raise ApiError(
            "conflict",
            "the kiosk or the terminal is paired already; unpair it first",
            {"kiosk_id": kiosk.id, "terminal_id": terminal.id},
        )
    kiosk.paired_terminal_id = terminal.id
