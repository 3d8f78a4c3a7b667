"""A principal is who a request or a socket acts for: a user or a device.

`authenticate` turns an access token into a principal, checking against the database
that the session, user or device is still valid: a token of a disabled user, a logged
out session or a rotated device secret stops working at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Branch, Device, Session, User
from server.auth.permissions import ALL, Permission, grants
from server.auth.tokens import TokenClaims, TokenCodec
from server.errors import ApiError


@dataclass(frozen=True)
class Principal:
    """A user (with a role and maybe a branch) or a device (of one branch)."""

    kind: Literal["user", "device"]
    id: int
    branch_id: int | None
    permissions: frozenset[str] = field(default_factory=frozenset)
    role: str | None = None
    device_kind: DeviceKind | None = None
    session_id: str | None = None

    @property
    def key(self) -> str:
        """`user:3` or `device:7`: unique across kinds, used for idempotency and presence."""
        return f"{self.kind}:{self.id}"

    @property
    def is_chain_wide(self) -> bool:
        """True for users bound to no branch (admins)."""
        return self.kind == "user" and self.branch_id is None

    def has(self, permission: Permission) -> bool:
        """True when the principal's role grants `permission`."""
        return grants(self.permissions, permission)

    def holds_all(self, permissions: Collection[str]) -> bool:
        """True when the principal holds every one of `permissions`, so handing them on escalates nothing."""
        return ALL in self.permissions or set(permissions) <= self.permissions

    def require(self, permission: Permission) -> None:
        """Raise `forbidden` unless the principal holds `permission`."""
        if not self.has(permission):
            raise ApiError("forbidden", f"missing permission {permission}", {"permission": str(permission)})

    def require_branch(self, branch_id: int | None) -> None:
        """Raise `forbidden` unless the principal may act in `branch_id` (None: chain-wide things)."""
        if self.is_chain_wide:
            return
        if branch_id is None or branch_id != self.branch_id:
            raise ApiError("forbidden", "outside your branch", {"branch_id": branch_id})

    def branch_scope(self) -> int | None:
        """The branch every list must be filtered to, or None for all branches."""
        return None if self.is_chain_wide else self.branch_id

    def public(self) -> dict[str, Any]:
        """What a client is told about itself (the `welcome` frame, `/auth/me`)."""
        data: dict[str, Any] = {"kind": self.kind, "id": self.id, "branch_id": self.branch_id}
        if self.kind == "device":
            data["device_kind"] = self.device_kind
        else:
            data["role"] = self.role
            data["permissions"] = sorted(self.permissions)
        return data


def user_principal(user: User, session_id: str | None) -> Principal:
    """The principal of an active user."""
    return Principal(
        kind="user",
        id=user.id,
        branch_id=user.branch_id,
        permissions=frozenset(user.role.permissions),
        role=user.role.name,
        session_id=session_id,
    )


def device_principal(device: Device) -> Principal:
    """The principal of an active device."""
    return Principal(kind="device", id=device.id, branch_id=device.branch_id, device_kind=device.kind)


async def principal_for_claims(session: AsyncSession, claims: TokenClaims) -> Principal:
    """The principal the claims name, if it still may act; `unauthorized` or `forbidden` otherwise."""
    if claims.kind == "device":
        device = await session.get(Device, claims.id)
        if device is None or device.secret_version != claims.secret_version:
            raise ApiError("unauthorized", "device token revoked")
        if not device.is_active:
            raise ApiError("forbidden", "device disabled")
        await _require_active_branch(session, device.branch_id)
        return device_principal(device)

    login = await session.get(Session, claims.session_id) if claims.session_id else None
    if login is None or login.user_id != claims.id or login.revoked_at is not None or login.expires_at <= utcnow():
        raise ApiError("unauthorized", "session ended")
    user = await session.get(User, claims.id)
    if user is None:
        raise ApiError("unauthorized", "user no longer exists")
    if not user.is_active:
        raise ApiError("forbidden", "user disabled")
    await _require_active_branch(session, user.branch_id)
    return user_principal(user, login.id)


async def _require_active_branch(session: AsyncSession, branch_id: int | None) -> None:
    # A disabled branch is closed: its devices and staff stop working with it.
    if branch_id is None:
        return
    branch = await session.get(Branch, branch_id)
    if branch is None or not branch.is_active:
        raise ApiError("forbidden", "branch disabled", {"branch_id": branch_id})


async def authenticate(session: AsyncSession, codec: TokenCodec, token: str | None) -> Principal:
    """The principal of a bearer access token, checked against the database."""
    if not token:
        raise ApiError("unauthorized", "missing token", headers={"WWW-Authenticate": "Bearer"})
    return await principal_for_claims(session, codec.decode(token, "access"))
