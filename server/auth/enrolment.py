"""Enrolment without typing secrets (persistence/tables/enrolment.py): pairing codes and one-step links.

A pairing code is six digits for people to read; the app that asked for it holds a random
poll token, stored only as its SHA-256 hash (the token is long and random, so a fast hash is
enough, unlike passwords). When the app picks up its claimed enrolment, the device gets a new
secret there and then: the secret is never stored in clear, and is delivered exactly once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.enums import DeviceKind
from persistence.tables import Device, PairingCode
from server.auth.passwords import generate_secret, hash_secret
from server.errors import ApiError

CODE_TTL = timedelta(minutes=10)
# Once claimed, the app has this long from the claim to pick up its credentials.
PICKUP_TTL = timedelta(minutes=10)
LINK_TTL = timedelta(hours=12)
# Expired rows are kept a day, so that a late poll hears "expired" rather than "unknown".
KEEP_EXPIRED = timedelta(days=1)
CODE_DIGITS = 6

# The app that runs on each kind of device, under /apps/<name>/.
APP_OF_KIND = {
    DeviceKind.KIOSK: "kiosk",
    DeviceKind.PAYMENT_TERMINAL: "terminal",
    DeviceKind.KITCHEN_DISPLAY: "kitchen",
    DeviceKind.ORDER_BOARD: "board",
}


def hash_token(token: str) -> str:
    """The stored form of a poll or link token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A poll or link token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_code() -> str:
    """Six random digits, leading zeros included."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


@dataclass(frozen=True)
class Issued:
    """A new pairing code (or link) and the token only its holder knows."""

    code: str | None
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class Credentials:
    """What an enrolled app keeps: its device and the secret it logs in with (shown once)."""

    device: Device
    secret: str


async def issue_code(session: AsyncSession, now: datetime, client_address: str) -> Issued:
    """A new pairing code, unique among the codes kept; expired rows older than a day are dropped first."""
    await session.execute(delete(PairingCode).where(PairingCode.expires_at < now - KEEP_EXPIRED))
    while True:
        # A million codes and a few live at a time: a clash is rare, so drawing again is cheap.
        code = new_code()
        if await session.scalar(select(PairingCode.id).where(PairingCode.code == code)) is None:
            break
    token = new_token()
    row = PairingCode(
        code=code,
        poll_token_hash=hash_token(token),
        expires_at=now + CODE_TTL,
        client_address=client_address[:64],
    )
    session.add(row)
    await session.flush()
    return Issued(code, token, row.expires_at)


async def issue_link(session: AsyncSession, device: Device, now: datetime, ttl: timedelta = LINK_TTL) -> Issued:
    """A one-step enrolment link's token for `device`: claimed from the start, redeemed once."""
    token = new_token()
    session.add(
        PairingCode(poll_token_hash=hash_token(token), device_id=device.id, expires_at=now + ttl, claimed_at=now)
    )
    await session.flush()
    return Issued(None, token, now + ttl)


def _expired(row: PairingCode, now: datetime) -> ApiError:
    what = f"pairing code {row.code}" if row.code else "the enrolment link"
    return ApiError("conflict", f"{what} has expired", {"reason": "expired"})


def _used(row: PairingCode) -> ApiError:
    what = f"pairing code {row.code}" if row.code else "the enrolment link"
    return ApiError("conflict", f"{what} was already used", {"reason": "used"})


async def live_code(session: AsyncSession, code: str, now: datetime) -> PairingCode:
    """The unclaimed, unexpired pairing code `code`, locked; `not_found` or `conflict` (expired, claimed) if not."""
    row = await session.scalar(select(PairingCode).where(PairingCode.code == code).with_for_update())
    if row is None:
        raise ApiError("not_found", f"no pairing code {code}", {"resource": "pairing_code", "reason": "unknown"})
    if row.claimed_at is not None:
        raise ApiError("conflict", f"pairing code {code} was already claimed", {"reason": "claimed"})
    if row.expires_at <= now:
        raise _expired(row, now)
    return row


async def pick_up(session: AsyncSession, token: str, now: datetime) -> Credentials | PairingCode:
    """For the holder of `token`: the device's credentials once claimed (a new secret, once), else the pending row.

    `not_found` for an unknown token, `conflict` for one expired or already picked up.
    """
    row = await session.scalar(
        select(PairingCode).where(PairingCode.poll_token_hash == hash_token(token)).with_for_update()
    )
    if row is None:
        raise ApiError("not_found", "no such pairing code or link", {"resource": "pairing_code", "reason": "unknown"})
    if row.used_at is not None:
        raise _used(row)
    if row.expires_at <= now:
        raise _expired(row, now)
    if row.claimed_at is None or row.device_id is None:
        return row
    device = await session.get(Device, row.device_id, with_for_update=True)
    if device is None:  # pragma: no cover - the row goes with its device (ON DELETE CASCADE)
        raise ApiError("not_found", "the device no longer exists", {"resource": "device", "id": row.device_id})
    secret = generate_secret()
    device.secret_hash = await hash_secret(secret)
    device.secret_version += 1
    row.used_at = now
    return Credentials(device, secret)


@dataclass(frozen=True)
class EnrolmentLink:
    """A device and the link that enrols a browser as it, in one step."""

    device_id: int
    kind: DeviceKind
    name: str
    url: str


async def enrolment_links(session: AsyncSession, base_url: str, now: datetime) -> list[EnrolmentLink]:
    """A one-step link for every active device, by id: `<base_url>/apps/<app>/#enrol=<token>`, valid LINK_TTL."""
    devices = (await session.scalars(select(Device).where(Device.is_active).order_by(Device.id))).all()
    links = []
    for device in devices:
        issued = await issue_link(session, device, now)
        url = f"{base_url.rstrip('/')}/apps/{APP_OF_KIND[device.kind]}/#enrol={issued.token}"
        links.append(EnrolmentLink(device.id, device.kind, device.name, url))
    return links
