"""The default roles, created when missing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.tables import Role
from server.auth.permissions import DEFAULT_ROLES


async def ensure_default_roles(session: AsyncSession) -> dict[str, Role]:
    """The admin, manager and staff roles, created with their default permissions if missing."""
    existing = {role.name: role for role in (await session.scalars(select(Role))).all()}
    for name, (description, permissions) in DEFAULT_ROLES.items():
        if name not in existing:
            role = Role(name=name, description=description, permissions=[str(p) for p in permissions])
            session.add(role)
            existing[name] = role
    await session.flush()
    return existing
