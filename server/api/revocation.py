"""What a change to a user, role or branch ends: login sessions, and open sockets on every instance.

A socket checks its principal once, at `hello`; REST checks it on every call. So a change to who a
principal is must reach its live sockets, or they would go on with the branch and permissions of
before (DESIGN: principals are checked as they are now, not as their token was). Sessions ended here
also end their tokens, since every access token names its session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update

from channels import frames
from persistence.base import utcnow
from persistence.tables import Device, Session, User
from server.api.routing import Call

# Reasons that mean "stop" (4003); any other ended session means "log in again" (4001).
_FORBIDDING = frozenset({"user_disabled"})


async def end_sessions(call: Call[Any, Any], user_ids: Sequence[int], reason: str, *, keep: str | None = None) -> None:
    """End the users' open sessions, except `keep`, and close their sockets on every instance once committed."""
    if not user_ids:
        return
    statement = (
        update(Session)
        .where(Session.user_id.in_(user_ids), Session.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    if keep is not None:
        statement = statement.where(Session.id != keep)
    ended = (await call.session.execute(statement.returning(Session.id, Session.user_id))).all()
    code = frames.FORBIDDEN if reason in _FORBIDDING else frames.UNAUTHORIZED
    if keep is not None:
        for session_id, user_id in ended:
            call.close_sockets(f"user:{user_id}", session=session_id, code=code, reason=reason.replace("_", " "))
        return
    # By user, not by the sessions ended: a login racing this transaction opens a session the UPDATE cannot see,
    # and its socket, welcomed with the access of before, must close too.
    for user_id in user_ids:
        call.close_sockets(f"user:{user_id}", code=code, reason=reason.replace("_", " "))


async def close_branch_sockets(call: Call[Any, Any], branch_id: int) -> None:
    """Close with 4003 the sockets of every device and user of a branch just disabled; they may return once enabled."""
    devices = (await call.session.scalars(select(Device.id).where(Device.branch_id == branch_id))).all()
    users = (await call.session.scalars(select(User.id).where(User.branch_id == branch_id))).all()
    for principal in [f"device:{device_id}" for device_id in devices] + [f"user:{user_id}" for user_id in users]:
        call.close_sockets(principal, code=frames.FORBIDDEN, reason="branch disabled")
