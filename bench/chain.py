"""A chain of branches, each with its devices and one member of staff, written straight into the database.

Like bench/provision.py, generalised to many branches and written in bulk, so that a
thousand branches and ten thousand sockets are ready in seconds. Each branch ("Scale
00001", ...) offers every item of the menu without a stock limit and has the sockets of
`TOPOLOGY`: kiosks, payment terminals, kitchen displays, an order board (devices, with
tokens signed by the server's `JWT_SECRET_KEY`) and one staff user with an open session
(a user token). Made once, then reused by name; every run opens fresh staff sessions and
puts every item back on, unlimited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.tables import Branch, Device, Item, ItemAvailability, Role, Session, User
from server.auth.passwords import generate_secret, hash_secret
from server.auth.permissions import STAFF_ROLE
from server.auth.roles import ensure_default_roles
from server.auth.tokens import TokenCodec
from server.settings import Settings

STAFF = "staff"
# The sockets of one branch, in the order they are connected: kind and how many.
TOPOLOGY: tuple[tuple[str, int], ...] = (
    (DeviceKind.KIOSK.value, 4),
    (DeviceKind.PAYMENT_TERMINAL.value, 2),
    (DeviceKind.KITCHEN_DISPLAY.value, 2),
    (DeviceKind.ORDER_BOARD.value, 1),
    (STAFF, 1),
)
SESSION_TTL = timedelta(days=1)


@dataclass(frozen=True)
class Chain:
    """The chain's sockets, branch by branch, and an item every branch offers (to change its stock)."""

    seats: list[Seat]
    item_id: int


@dataclass(frozen=True)
class Seat:
    """One socket of the chain: its branch, its kind (a device kind or `staff`), who it is and its token."""

    branch_id: int
    kind: str
    ident: int
    token: str


def branch_name(number: int) -> str:
    """The name of the chain's branch `number` (1, 2, ...)."""
    return f"Scale {number:05d}"


def device_name(kind: str, number: int) -> str:
    """The name of a branch's `number`th device of `kind` (1, 2, ...)."""
    return f"scale-{kind}-{number}"


def staff_name(branch_number: int) -> str:
    """The username of branch `branch_number`'s member of staff."""
    return f"scale-staff-{branch_number:05d}"


def wanted_devices(branch_ids: list[int]) -> list[tuple[int, str, str]]:
    """(branch id, kind, name) of every device the topology gives these branches."""
    return [
        (branch_id, kind, device_name(kind, number))
        for branch_id in branch_ids
        for kind, count in TOPOLOGY
        if kind != STAFF
        for number in range(1, count + 1)
    ]


def sockets_per_branch() -> int:
    """How many sockets one branch opens."""
    return sum(count for _, count in TOPOLOGY)


async def provision_chain(settings: Settings, branches: int) -> Chain:
    """Make (or reuse) `branches` branches with their devices and staff; every socket's seat, branch by branch."""
    db = Database.from_url(settings.database_url)
    codec = TokenCodec(settings)
    secret_hash = await hash_secret(generate_secret())
    try:
        async with db.session() as session:
            model = await session.scalar(select(Branch).order_by(Branch.id).limit(1))
            names = [branch_name(number) for number in range(1, branches + 1)]
            known = set((await session.scalars(select(Branch.name).where(Branch.name.in_(names)))).all())
            missing = [name for name in names if name not in known]
            if missing:
                await session.execute(
                    insert(Branch),
                    [
                        {
                            "name": name,
                            "currency": model.currency if model else "EUR",
                            "timezone": model.timezone if model else "UTC",
                            "tax_rate_bp": model.tax_rate_bp if model else 0,
                            "address": "load generator",
                        }
                        for name in missing
                    ],
                )
            rows = (await session.execute(select(Branch.id, Branch.name).where(Branch.name.in_(names)))).all()
            by_name = {name: branch_id for branch_id, name in rows}
            branch_ids = [by_name[name] for name in names]
            await session.execute(update(Branch).where(Branch.id.in_(branch_ids)).values(is_active=True))
            item_id = await _offer_everything(session, branch_ids)
            devices = await _devices(session, branch_ids, secret_hash)
            staff = await _staff(session, branch_ids, secret_hash)
            seats: list[Seat] = []
            for branch_id in branch_ids:
                for kind, count in TOPOLOGY:
                    if kind == STAFF:
                        user_id, session_id = staff[branch_id]
                        token, _ = codec.issue("user", user_id, session_id=session_id)
                        seats.append(Seat(branch_id, STAFF, user_id, token))
                        continue
                    for index in range(1, count + 1):
                        device_id, version = devices[(branch_id, device_name(kind, index))]
                        token, _ = codec.issue("device", device_id, secret_version=version)
                        seats.append(Seat(branch_id, kind, device_id, token))
            return Chain(seats, item_id)
    finally:
        await db.dispose()


async def _offer_everything(session: AsyncSession, branch_ids: list[int]) -> int:
    """Every live item on in every branch, without a stock limit; the first item's id."""
    items = (await session.scalars(select(Item.id).where(Item.deleted_at.is_(None)))).all()
    if not items:
        raise RuntimeError("the database has no menu: run `python -m server seed-demo` first")
    await session.execute(delete(ItemAvailability).where(ItemAvailability.branch_id.in_(branch_ids)))
    await session.execute(
        insert(ItemAvailability),
        [
            {"branch_id": branch_id, "item_id": item_id, "available": True, "stock": None}
            for branch_id in branch_ids
            for item_id in items
        ],
    )
    return min(items)


async def _devices(
    session: AsyncSession, branch_ids: list[int], secret_hash: str
) -> dict[tuple[int, str], tuple[int, int]]:
    """The topology's devices of these branches, the missing ones inserted: (branch, name) -> (id, secret version)."""
    query = select(Device.branch_id, Device.name, Device.id, Device.secret_version).where(
        Device.branch_id.in_(branch_ids), Device.name.like("scale-%")
    )
    found = {(b, name): (ident, version) for b, name, ident, version in (await session.execute(query)).all()}
    missing = [row for row in wanted_devices(branch_ids) if (row[0], row[2]) not in found]
    if missing:
        await session.execute(
            insert(Device),
            [
                {"branch_id": b, "kind": DeviceKind(kind), "name": name, "secret_hash": secret_hash, "info": {}}
                for b, kind, name in missing
            ],
        )
        found = {(b, name): (ident, version) for b, name, ident, version in (await session.execute(query)).all()}
    await session.execute(update(Device).where(Device.branch_id.in_(branch_ids)).values(is_active=True))
    return found


async def _staff(session: AsyncSession, branch_ids: list[int], secret_hash: str) -> dict[int, tuple[int, str]]:
    """One staff user per branch, the missing ones inserted, each with a fresh session: branch -> (user, session)."""
    roles = await ensure_default_roles(session)
    role: Role = roles[STAFF_ROLE]
    names = {staff_name(number): branch_id for number, branch_id in enumerate(branch_ids, start=1)}
    query = select(User.username, User.id).where(User.username.in_(list(names)))
    found = dict((await session.execute(query)).all())
    missing = [name for name in names if name not in found]
    if missing:
        await session.execute(
            insert(User),
            [
                {"username": name, "password_hash": secret_hash, "role_id": role.id, "branch_id": names[name]}
                for name in missing
            ],
        )
        found = dict((await session.execute(query)).all())
    user_ids = list(found.values())
    await session.execute(update(User).where(User.id.in_(user_ids)).values(is_active=True, role_id=role.id))
    await session.execute(delete(Session).where(Session.user_id.in_(user_ids)))
    now = utcnow()
    opened = {names[name]: (user_id, str(uuid.uuid4())) for name, user_id in found.items()}
    await session.execute(
        insert(Session),
        [
            {
                "id": session_id,
                "user_id": user_id,
                "refresh_jti": str(uuid.uuid4()),
                "created_at": now,
                "expires_at": now + SESSION_TTL,
                "user_agent": "load generator",
            }
            for user_id, session_id in opened.values()
        ],
    )
    return opened
