"""The command log: each principal's replies by command id, so a retried command is answered, not redone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table, utcnow
from persistence.tables import CommandLogEntry

# Built once: every command runs it, and a statement object keeps its SQL cache key for the next call.
TABLE = table(CommandLogEntry)
_STORED_REPLY = select(TABLE.c.reply).where(
    TABLE.c.principal == bindparam("principal"), TABLE.c.command_id == bindparam("command_id")
)
INSERT = insert(TABLE)


async def stored_reply(session: AsyncSession, principal: str, command_id: str) -> dict[str, Any] | None:
    """The reply already given to this command id, if any."""
    params = {"principal": principal, "command_id": command_id}
    return (await session.execute(_STORED_REPLY, params)).scalar_one_or_none()


@dataclass(frozen=True)
class Entry:
    """A command's reply as the log keeps it."""

    principal: str
    command_id: str
    command: str
    reply: dict[str, Any]

    def values(self) -> dict[str, Any]:
        """The row's values, stamped now."""
        # Not dataclasses.asdict: that deep-copies the reply, which is only read.
        return {
            "principal": self.principal,
            "command_id": self.command_id,
            "command": self.command,
            "reply": self.reply,
            "created_at": utcnow(),
        }


async def record(session: AsyncSession, principal: str, command_id: str, command: str, reply: dict[str, Any]) -> None:
    """Store the reply in the session's transaction, beside the command's effect."""
    # A plain INSERT: nothing reads the row back in this transaction, so the ORM's bookkeeping would be waste.
    await session.execute(INSERT, Entry(principal, command_id, command, reply).values())


async def forget_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete the replies stored before `cutoff` (ids are unique for 24 hours only); returns how many went."""
    result = await session.execute(delete(CommandLogEntry).where(CommandLogEntry.created_at < cutoff))
    # A bulk DELETE always gives a cursor result, which counts the rows it touched.
    return cast(CursorResult[Any], result).rowcount
