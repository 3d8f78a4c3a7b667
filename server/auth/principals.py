"""A principal is who a request or a socket acts for: a user or a device.

`authenticate` turns an access token into a principal, checking against the database
that the session, user or device is still valid: a token of a disabled user, a logged
out session or a rotated device secret stops working at once. The check is one prepared
statement (persistence/prepared.py): every REST call and every socket's `hello` runs it,
thousands at once when an instance's devices reconnect.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table, utcnow
from persistence.enums import DeviceKind
from persistence.prepared import Prepared
from persistence.tables import Branch, Device, Role, Session, Station, User
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
    # When a user's login session ends (None for devices): a principal kept beyond it is no longer valid.
    session_expires_at: datetime | None = None
    # A kitchen display's station code (None: the whole kitchen, and for every other principal).
    station: str | None = None

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
            if self.device_kind == DeviceKind.KITCHEN_DISPLAY:
                data["station"] = self.station
        else:
            data["role"] = self.role
            data["permissions"] = sorted(self.permissions)
        return data


_DEVICES, _BRANCHES, _USERS, _ROLES, _SESSIONS = (table(t) for t in (Device, Branch, User, Role, Session))
_STATIONS = table(Station)
# The device with whether its branch is active (NULL: no such branch) and its station's code (NULL: none).
_DEVICE = Prepared(
    select(
        _DEVICES.c.id,
        _DEVICES.c.branch_id,
        _DEVICES.c.kind,
        _DEVICES.c.secret_version,
        _DEVICES.c.is_active,
        _BRANCHES.c.is_active.label("branch_active"),
        _STATIONS.c.code.label("station"),
    )
    .select_from(
        _DEVICES.outerjoin(_BRANCHES, _BRANCHES.c.id == _DEVICES.c.branch_id).outerjoin(
            _STATIONS, _STATIONS.c.id == _DEVICES.c.station_id
        )
    )
    .where(_DEVICES.c.id == bindparam("device_id"))
)
# The login session with its user, the user's role and whether the user's branch is active (NULL: none).
_LOGIN = Prepared(
    select(
        _SESSIONS.c.user_id,
        _SESSIONS.c.revoked_at,
        _SESSIONS.c.expires_at,
        _USERS.c.is_active,
        _USERS.c.branch_id,
        _ROLES.c.name.label("role"),
        _ROLES.c.permissions,
        _BRANCHES.c.is_active.label("branch_active"),
    )
    .select_from(
        _SESSIONS.join(_USERS, _USERS.c.id == _SESSIONS.c.user_id)
        .join(_ROLES, _ROLES.c.id == _USERS.c.role_id)
        .outerjoin(_BRANCHES, _BRANCHES.c.id == _USERS.c.branch_id)
    )
    .where(_SESSIONS.c.id == bindparam("session_id"))
)


async def principal_for_claims(session: AsyncSession, claims: TokenClaims) -> Principal:
    """The principal the claims name, if it still may act; `unauthorized` or `forbidden` otherwise."""
    if claims.kind == "device":
        device = await _DEVICE.first(session, {"device_id": claims.id})
        if device is None or device.secret_version != claims.secret_version:
            raise ApiError("unauthorized", "device token revoked")
        if not device.is_active:
            raise ApiError("forbidden", "device disabled")
        _require_active_branch(device.branch_id, device.branch_active)
        return Principal(
            kind="device", id=device.id, branch_id=device.branch_id, device_kind=device.kind, station=device.station
        )

    login = await _LOGIN.first(session, {"session_id": claims.session_id}) if claims.session_id else None
    if login is None or login.user_id != claims.id or login.revoked_at is not None or login.expires_at <= utcnow():
        # A user deleted takes their sessions with them (ON DELETE CASCADE): no row either.
        raise ApiError("unauthorized", "session ended")
    if not login.is_active:
        raise ApiError("forbidden", "user disabled")
    _require_active_branch(login.branch_id, login.branch_active)
    return Principal(
        kind="user",
        id=claims.id,
        branch_id=login.branch_id,
        permissions=frozenset(login.permissions),
        role=login.role,
        session_id=claims.session_id,
        session_expires_at=login.expires_at,
    )


def _require_active_branch(branch_id: int | None, active: bool | None) -> None:
    # A disabled branch is closed: its devices and staff stop working with it.
    if branch_id is not None and not active:
        raise ApiError("forbidden", "branch disabled", {"branch_id": branch_id})


async def authenticate(session: AsyncSession, codec: TokenCodec, token: str | None) -> Principal:
    """The principal of a bearer access token, checked against the database."""
    if not token:
        raise ApiError("unauthorized", "missing token", headers={"WWW-Authenticate": "Bearer"})
    return await principal_for_claims(session, codec.decode(token, "access"))
