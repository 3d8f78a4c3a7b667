"""A small world for REST tests: two branches and a user of every role.

Users get their tokens from a session row written here, not from `/auth/login`, so that
a test does not pay for Argon2 five times; the login route has its own tests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from persistence.base import utcnow
from persistence.database import Database
from persistence.tables import Branch, Role, Session, User
from server.auth.passwords import _hasher
from server.auth.roles import ensure_default_roles
from server.services import Services

PASSWORD = "correct horse battery staple"
PASSWORD_HASH = _hasher.hash(PASSWORD)


@dataclass
class Actor:
    """A user of the test world and the headers that authenticate it."""

    id: int
    username: str
    role: str
    branch_id: int | None
    headers: dict[str, str]


@dataclass
class World:
    """Two branches (a and b) and admin, manager and staff users."""

    branch_a: int
    branch_b: int
    roles: dict[str, int]
    admin: Actor
    manager_a: Actor
    staff_a: Actor
    manager_b: Actor
    staff_b: Actor


def _session_of(services: Services, user_id: int) -> tuple[Session, dict[str, str]]:
    """A new login session row of `user_id` (to be added) and the Authorization headers of its access token."""
    now = utcnow()
    row = Session(
        id=str(uuid.uuid4()),
        user_id=user_id,
        refresh_jti=str(uuid.uuid4()),
        created_at=now,
        expires_at=now + services.tokens.refresh_ttl,
    )
    token, _ = services.tokens.issue("user", user_id, session_id=row.id)
    return row, {"Authorization": f"Bearer {token}"}


async def login_as(services: Services, user_id: int) -> dict[str, str]:
    """Authorization headers for a fresh session of `user_id`."""
    row, headers = _session_of(services, user_id)
    async with services.db.session() as session:
        session.add(row)
    return headers


async def add_user(db: Database, username: str, role: Role | int, branch_id: int | None) -> int:
    """Insert an active user with the shared test password; returns its id."""
    async with db.session() as session:
        user = User(
            username=username,
            password_hash=PASSWORD_HASH,
            role_id=role if isinstance(role, int) else role.id,
            branch_id=branch_id,
        )
        session.add(user)
        await session.flush()
        return user.id


async def build_world(services: Services) -> World:
    """Create the branches, roles and users of the world, in one transaction."""
    async with services.db.session() as session:
        roles = await ensure_default_roles(session)
        a = Branch(name="Alpha", currency="EUR", timezone="Europe/Berlin")
        b = Branch(name="Beta", currency="USD", timezone="America/New_York")
        session.add_all([a, b])
        await session.flush()
        role_ids = {name: role.id for name, role in roles.items()}
        people = [
            ("admin", "admin", None),
            ("manager.a", "manager", a.id),
            ("staff.a", "staff", a.id),
            ("manager.b", "manager", b.id),
            ("staff.b", "staff", b.id),
        ]
        users = [
            User(username=name, password_hash=PASSWORD_HASH, role_id=role_ids[role], branch_id=branch)
            for name, role, branch in people
        ]
        session.add_all(users)
        await session.flush()
        actors = []
        for user, (name, role, branch) in zip(users, people, strict=True):
            row, headers = _session_of(services, user.id)
            session.add(row)
            actors.append(Actor(user.id, name, role, branch, headers))
        branch_a, branch_b = a.id, b.id
    admin, manager_a, staff_a, manager_b, staff_b = actors
    return World(branch_a, branch_b, role_ids, admin, manager_a, staff_a, manager_b, staff_b)
