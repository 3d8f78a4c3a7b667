"""Which failures are outages: the database or Redis out of reach, answered `unavailable`, never `internal`.

An outage refusal says "nothing was changed, try again": a command refused for one is not
logged as its final reply, so a retry with the same id after recovery runs afresh.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATEs of a server that is going away or refusing connections: class 08 (connection exception) and the
# shutdowns of class 57 (administrator command, crash, "the database system is shutting down"), plus too
# many connections.
_OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# What asyncpg and aiosqlite raise, through SQLAlchemy's adapter, for a server lost mid-conversation. asyncpg's
# InternalClientError ("cannot switch to state 12; another operation is in progress") is a connection left
# half-way through an operation when its server went away (seen during a PostgreSQL restart).
_LOST_CONNECTION = frozenset(
    {"InterfaceError", "ConnectionDoesNotExistError", "CannotConnectNowError", "InternalClientError"}
)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database or Redis could not be reached, so nothing was changed."""
    # PoolTimeout: the pool gave no connection in time (every one busy, or the database slow to accept more).
    if isinstance(exc, OSError | TimeoutError | PoolTimeout | RedisConnectionError | RedisTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        return (
            exc.connection_invalidated
            or isinstance(exc.orig, OSError)
            or type(exc.orig).__name__ in _LOST_CONNECTION
            or sqlstate.startswith("08")
            or sqlstate in _OUTAGE_SQLSTATES
        )
    return False
