"""Short order numbers: per branch, starting at 1 each business day, never repeated within a day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from persistence.base import table
from persistence.prepared import Prepared
from persistence.tables import OrderNumber

_NUMBERS = table(OrderNumber)


def take_number(insert: Callable[..., Any]) -> Insert:
    """The upsert that takes the branch's next number for a day (`b_branch_id`, `b_business_date`), RETURNING it
    as `last_number`; `insert` is the dialect's (each database spells ON CONFLICT in its own).

    The row stays locked until the transaction ends, so concurrent orders of a branch get consecutive numbers; a
    rolled-back order gives its number back. Also a part of the statement that places an order on PostgreSQL.
    """
    statement: Insert = (
        insert(_NUMBERS)
        .values(branch_id=bindparam("b_branch_id"), business_date=bindparam("b_business_date"), last_number=1)
        .on_conflict_do_update(
            index_elements=[_NUMBERS.c.branch_id, _NUMBERS.c.business_date],
            set_={"last_number": _NUMBERS.c.last_number + 1},
        )
        .returning(_NUMBERS.c.last_number)
    )
    return statement


_NEXT_NUMBER = {"postgresql": Prepared(take_number(postgresql_insert)), "sqlite": Prepared(take_number(sqlite_insert))}


async def next_number(session: AsyncSession, branch_id: int, business_date: date) -> int:
    """The branch's next number for `business_date`, taken with one upsert in the caller's transaction (its row
    locked until the transaction ends: see `take_number`)."""
    params = {"b_branch_id": branch_id, "b_business_date": business_date}
    return int(await _NEXT_NUMBER[session.get_bind().dialect.name].scalar(session, params))
