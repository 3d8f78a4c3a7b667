"""REST routes: log in, refresh, log out, and device tokens.

A login opens a session. Its refresh token may be used once: refreshing returns a new
pair and retires the old refresh token; presenting a retired one again means it leaked,
so the whole session is revoked. Logging out revokes the session, and with it every
access token issued under it, at once.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from channels import frames
from persistence.base import utcnow
from persistence.enums import DeviceKind
from persistence.tables import Device, Session, User
from server.api.routing import ApiRouter, Call
from server.auth.passwords import verify_secret
from server.errors import ApiError
from server.validation import Input, RowId

router = ApiRouter("auth")

LOGIN_WINDOW_S = 60
# Failed logins are limited per name (username or device id) from one address, so a stranger's guesses
# block only the stranger, and per address over all names, as many staff and devices may share one.
ADDRESS_LIMIT_FACTOR = 5


class LoginIn(Input):
    """Credentials, as JSON or as the OAuth2 password form."""

    model_config = ConfigDict(extra="ignore")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenPair(BaseModel):
    """An access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_at: datetime
    refresh_expires_at: datetime


class RefreshIn(Input):
    """The refresh token to exchange."""

    refresh_token: str = Field(min_length=1)


class DeviceLoginIn(Input):
    """A device's id and its secret (shown once when the device was created or rotated)."""

    device_id: RowId
    secret: str = Field(min_length=1, max_length=256)


class DeviceToken(BaseModel):
    """A device's access token."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    device_id: int
    device_kind: DeviceKind
    branch_id: int


class Me(BaseModel):
    """The caller as the server sees it."""

    kind: str
    id: int
    branch_id: int | None
    role: str | None = None
    permissions: list[str] = []
    device_kind: DeviceKind | None = None
    station: str | None = Field(default=None, description="a kitchen display's station code; null: none")


def _login_limits(call: Call[LoginIn, None] | Call[DeviceLoginIn, None], name: str) -> tuple[tuple[str, int], ...]:
    """The rate-limit keys of a login for `name` from the caller's address, with their limits."""
    limit = call.services.settings.LOGIN_RATE_LIMIT
    address = call.client_address
    # `name` is "user:..." or "device:...", words no address contains, so no two keys can run together.
    return (f"login:addr:{address}:{name}", limit), (f"login:addr:{address}", limit * ADDRESS_LIMIT_FACTOR)


async def _limit(call: Call[LoginIn, None] | Call[DeviceLoginIn, None], *keys: tuple[str, int]) -> None:
    # Counted before the secret is checked, so that guesses sent at once cannot all pass; `_forgive` undoes it.
    for key, limit in keys:
        wait = await call.services.rate_limiter.hit(key, limit, LOGIN_WINDOW_S)
        if wait is not None:
            # Retry-After counts whole seconds: rounded up, so that a retry never comes too early.
            raise ApiError(
                "rate_limited",
                "too many login attempts; try again later",
                {"retry_after_s": round(wait)},
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


async def _forgive(call: Call[LoginIn, None] | Call[DeviceLoginIn, None], *keys: tuple[str, int]) -> None:
    # The secret was right: this attempt is no failure, so it must not bring anyone nearer the limit.
    for key, _ in keys:
        await call.services.rate_limiter.refund(key)


def _issue_pair(call: Call[LoginIn, None] | Call[RefreshIn, None], login: Session) -> TokenPair:
    codec = call.services.tokens
    access, access_claims = codec.issue("user", login.user_id, "access", session_id=login.id)
    refresh, refresh_claims = codec.issue("user", login.user_id, "refresh", session_id=login.id, jti=login.refresh_jti)
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_at=access_claims.expires_at,
        refresh_expires_at=refresh_claims.expires_at,
    )


@router.post(
    "/auth/login",
    "Log in",
    public=True,
    body=LoginIn,
    response=TokenPair,
    form=True,
    errors=("unauthorized", "forbidden", "rate_limited"),
)
async def login(call: Call[LoginIn, None]) -> TokenPair:
    """Exchange a username and password for an access and a refresh token (JSON or OAuth2 form)."""
    username = call.body.username.strip().lower()
    limits = _login_limits(call, f"user:{username}")
    await _limit(call, *limits)
    user = await call.session.scalar(select(User).where(User.username == username))
    if not await verify_secret(user.password_hash if user else None, call.body.password) or user is None:
        raise ApiError("unauthorized", "wrong username or password")
    await _forgive(call, *limits)
    if not user.is_active:
        raise ApiError("forbidden", "user disabled")
    now = utcnow()
    login = Session(
        id=str(uuid.uuid4()),
        user_id=user.id,
        refresh_jti=str(uuid.uuid4()),
        created_at=now,
        expires_at=now + call.services.tokens.refresh_ttl,
        user_agent=(call.request.headers.get("user-agent") or "")[:255] or None,
        client_address=call.client_address[:64],
    )
    user.last_login_at = now
    call.session.add(login)
    return _issue_pair(call, login)


@router.post(
    "/auth/refresh", "Rotate tokens", public=True, body=RefreshIn, response=TokenPair, errors=("unauthorized",)
)
async def refresh(call: Call[RefreshIn, None]) -> TokenPair | None:
    """Exchange a refresh token for a new pair; a refresh token used twice revokes its whole session."""
    claims = call.services.tokens.decode(call.body.refresh_token, "refresh")
    login = await call.session.get(Session, claims.session_id) if claims.session_id else None
    if login is None or login.revoked_at is not None or login.user_id != claims.id:
        raise ApiError("unauthorized", "session ended")
    if login.refresh_jti != claims.jti:
        # A retired refresh token came back: someone else holds a copy. End the session for both.
        login.revoked_at = utcnow()
        login.revoked_reason = "refresh_token_reuse"
        reason = "refresh token reused"
        call.close_sockets(f"user:{login.user_id}", session=login.id, code=frames.UNAUTHORIZED, reason=reason)
        call.refuse(ApiError("unauthorized", "refresh token already used; the session is revoked"))
        return None
    user = await call.session.get(User, login.user_id)
    if user is None or not user.is_active:
        raise ApiError("unauthorized", "user disabled")
    login.refresh_jti = str(uuid.uuid4())
    return _issue_pair(call, login)


@router.post("/auth/logout", "Log out", errors=("unauthorized", "invalid"))
async def logout(call: Call[None, None]) -> None:
    """End the caller's session: its access and refresh tokens stop working at once."""
    principal = call.principal
    if principal.session_id is None:
        raise ApiError("invalid", "only user sessions can log out")
    login = await call.session.get(Session, principal.session_id)
    if login is not None and login.revoked_at is None:
        login.revoked_at = utcnow()
        login.revoked_reason = "logout"
    call.close_sockets(principal.key, session=principal.session_id, code=frames.UNAUTHORIZED, reason="logged out")


@router.post(
    "/auth/device",
    "Device token",
    public=True,
    body=DeviceLoginIn,
    response=DeviceToken,
    errors=("unauthorized", "forbidden", "rate_limited"),
)
async def device_login(call: Call[DeviceLoginIn, None]) -> DeviceToken:
    """Exchange a device id and its secret for a device access token (used in the WebSocket `hello`)."""
    limits = _login_limits(call, f"device:{call.body.device_id}")
    await _limit(call, *limits)
    device = await call.session.get(Device, call.body.device_id)
    if not await verify_secret(device.secret_hash if device else None, call.body.secret) or device is None:
        raise ApiError("unauthorized", "wrong device id or secret")
    await _forgive(call, *limits)
    if not device.is_active:
        raise ApiError("forbidden", "device disabled")
    token, claims = call.services.tokens.issue("device", device.id, secret_version=device.secret_version)
    return DeviceToken(
        access_token=token,
        expires_at=claims.expires_at,
        device_id=device.id,
        device_kind=device.kind,
        branch_id=device.branch_id,
    )


@router.get("/auth/me", "Who am I", response=Me, errors=("unauthorized",))
async def me(call: Call[None, None]) -> Me:
    """The caller's identity, role, branch and permissions."""
    return Me.model_validate(call.principal.public())
