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


async def login_as(services: Services, user_id: int) -> dict[str, str]:
    """Authorization headers for a fresh session of `user_id`."""
    now = utcnow()
    session_id = str(uuid.uuid4())
    async with services.db.session() as session:
        session.add(
            Session(
                id=session_id,
                user_id=user_id,
                refresh_jti=str(uuid.uuid4()),
                created_at=now,
                expires_at=now + services.tokens.refresh_ttl,
            )
        )
    token, _ = services.tokens.issue("user", user_id, session_id=session_id)
    return {"Authorization": f"Bearer {token}"}


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
    """Create the branches, roles and users of the world."""
    async with services.db.session() as session:
        roles = await ensure_default_roles(session)
        a = Branch(name="Alpha", currency="EUR", timezone="Europe/Berlin")
        b = Branch(name="Beta", currency="USD", timezone="America/New_York")
        session.add_all([a, b])
        await session.flush()
        role_ids = {name: role.id for name, role in roles.items()}
        branch_a, branch_b = a.id, b.id

    async def actor(username: str, role: str, branch_id: int | None) -> Actor:
        user_id = await add_user(services.db, username, role_ids[role], branch_id)
        return Actor(user_id, username, role, branch_id, await login_as(services, user_id))

    return World(
        branch_a=branch_a,
        branch_b=branch_b,
        roles=role_ids,
        admin=await actor("admin", "admin", None),
        manager_a=await actor("manager.a", "manager", branch_a),
        staff_a=await actor("staff.a", "staff", branch_a),
        manager_b=await actor("manager.b", "manager", branch_b),
        staff_b=await actor("staff.b", "staff", branch_b),
    )
