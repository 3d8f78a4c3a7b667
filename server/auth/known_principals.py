"""Principals a socket's `hello` takes from the broker rather than the database.

When an instance dies, thousands of its devices say `hello` again within seconds, each with a
token the database was asked about when it first connected. What the database said then is
pinned (channels/brokers/base.py) to the channel `names.principal(key)`, at the position read
before the database was. Every change that ends or narrows what a principal may do (a device
disabled or its secret rotated, a session ended, a role or user changed, a branch disabled)
emits an event on that channel in the transaction that makes it (`Call.close_sockets`), so the
outbox publishes it once committed and the pin is stale on every instance from then on. A pin
is as good as the database until then: between a commit and its publish (milliseconds, or as
long as Redis is unreachable) a hello may still be let in, as the sockets already open are
still open until the same publish closes them.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from channels import names
from channels.brokers import Broker
from persistence.base import utcnow
from persistence.database import Database
from persistence.enums import DeviceKind
from persistence.outages import is_unavailable
from server.auth.principals import Principal, principal_for_claims
from server.auth.tokens import TokenClaims

log = logging.getLogger("server.auth")


class KnownPrincipals:
    """The principal of a token's claims: pinned in the broker when it can be, from the database otherwise."""

    def __init__(self, db: Database, broker: Broker, *, ttl_s: int) -> None:
        """Pins last `ttl_s` seconds at most (an access token's life: a later hello brings a newer token)."""
        self._db = db
        self._broker = broker
        self._ttl_s = ttl_s

    async def of(self, claims: TokenClaims) -> Principal:
        """The principal the claims name, if it still may act; `ApiError` (`unauthorized`, `forbidden`) if not."""
        channel = names.principal(claims.subject)
        # Keyed by what is unique to this token's grant, never by a number a restored or recreated database could
        # hand to someone else: a user's session id, a device token's own id (a device keeps its token across
        # reconnects, and takes a new one about daily).
        key = f"s:{claims.session_id}" if claims.kind == "user" else f"t:{claims.jti}"
        try:
            pinned, at = await self._broker.pinned(channel, key)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("no pinned principal for %s (%s); asking the database", claims.subject, exc)
            return await self._read(claims)
        if pinned is not None:
            principal = _decode(pinned)
            if principal.session_expires_at is None or principal.session_expires_at > utcnow():
                return principal
        principal = await self._read(claims)
        try:
            await self._broker.pin(channel, at, key, _encode(principal), self._ttl_s)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("could not pin the principal %s: %s", claims.subject, exc)
        return principal

    async def _read(self, claims: TokenClaims) -> Principal:
        async with self._db.session() as session:
            return await principal_for_claims(session, claims)


def _encode(principal: Principal) -> str:
    expires = principal.session_expires_at
    return json.dumps(
        {
            "kind": principal.kind,
            "id": principal.id,
            "branch_id": principal.branch_id,
            "permissions": sorted(principal.permissions),
            "role": principal.role,
            "device_kind": principal.device_kind,
            "session_id": principal.session_id,
            "session_expires_at": expires.isoformat() if expires else None,
            "station": principal.station,
        }
    )


def _decode(text: str) -> Principal:
    raw: dict[str, Any] = json.loads(text)
    expires = raw["session_expires_at"]
    return Principal(
        kind=raw["kind"],
        id=raw["id"],
        branch_id=raw["branch_id"],
        permissions=frozenset(raw["permissions"]),
        role=raw["role"],
        device_kind=DeviceKind(raw["device_kind"]) if raw["device_kind"] else None,
        session_id=raw["session_id"],
        session_expires_at=datetime.fromisoformat(expires) if expires else None,
        # Pinned before stations existed: none.
        station=raw.get("station"),
    )
