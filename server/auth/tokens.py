"""JSON Web Tokens: access tokens for users and devices, refresh tokens for users.

Claims: `sub` is the principal key (`user:3`, `device:7`), `typ` is `access` or
`refresh`, `sid` names a user's session (so logout revokes its access tokens at once)
and `ver` a device's secret version (so a rotated secret revokes its tokens).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt

from persistence.base import utcnow
from server.errors import ApiError
from server.settings import Settings

TokenType = Literal["access", "refresh"]


@dataclass(frozen=True)
class TokenClaims:
    """The verified content of a token."""

    kind: Literal["user", "device"]
    id: int
    typ: TokenType
    jti: str
    expires_at: datetime
    session_id: str | None = None
    secret_version: int | None = None

    @property
    def subject(self) -> str:
        """The principal key, e.g. `device:7`."""
        return f"{self.kind}:{self.id}"


class TokenCodec:
    """Signs and verifies tokens with the configured secret and algorithm."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.JWT_SECRET_KEY
        self._algorithm = settings.JWT_ALGORITHM
        self.access_ttl = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
        self.refresh_ttl = timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS)

    def issue(
        self,
        kind: Literal["user", "device"],
        ident: int,
        typ: TokenType = "access",
        *,
        session_id: str | None = None,
        secret_version: int | None = None,
        jti: str | None = None,
        now: datetime | None = None,
    ) -> tuple[str, TokenClaims]:
        """A signed token and its claims."""
        issued = now or utcnow()
        expires = issued + (self.access_ttl if typ == "access" else self.refresh_ttl)
        claims = TokenClaims(
            kind=kind,
            id=ident,
            typ=typ,
            jti=jti or str(uuid.uuid4()),
            expires_at=expires.replace(microsecond=0),
            session_id=session_id,
            secret_version=secret_version,
        )
        payload: dict[str, Any] = {
            "sub": claims.subject,
            "typ": typ,
            "jti": claims.jti,
            "iat": int(issued.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        if session_id is not None:
            payload["sid"] = session_id
        if secret_version is not None:
            payload["ver"] = secret_version
        return jwt.encode(payload, self._secret, algorithm=self._algorithm), claims

    def decode(self, token: str, typ: TokenType = "access") -> TokenClaims:
        """The claims of a valid, unexpired token of type `typ`; `unauthorized` otherwise."""
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                options={"require": ["sub", "typ", "jti", "exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError("unauthorized", "token expired") from exc
        except jwt.PyJWTError as exc:
            raise ApiError("unauthorized", "invalid token") from exc
        if payload.get("typ") != typ:
            raise ApiError("unauthorized", f"not an {typ} token" if typ == "access" else f"not a {typ} token")
        kind, _, ident = str(payload["sub"]).partition(":")
        if kind not in ("user", "device") or not ident.isdigit():
            raise ApiError("unauthorized", "invalid token subject")
        return TokenClaims(
            kind="user" if kind == "user" else "device",
            id=int(ident),
            typ=typ,
            jti=str(payload["jti"]),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), tz=utcnow().tzinfo),
            session_id=payload.get("sid"),
            secret_version=payload.get("ver"),
        )
