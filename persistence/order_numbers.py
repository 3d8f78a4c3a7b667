"""Short order numbers: per branch, starting at 1 each business day, never repeated within a day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import table
from persistence.tables import OrderNumber
from persistence.upsert import Upsert

# Built once (every order runs it): a statement object keeps its SQL cache key for the next call.
_NUMBERS = table(OrderNumber)
_NEXT_NUMBER = Upsert(
    lambda insert: (
        insert(_NUMBERS)
        .values(branch_id=bindparam("b_branch_id"), business_date=bindparam("b_business_date"), last_number=1)
        .on_conflict_do_update(
            index_elements=[_NUMBERS.c.branch_id, _NUMBERS.c.business_date],
            set_={"last_number": _NUMBERS.c.last_number + 1},
        )
        .returning(_NUMBERS.c.last_number)
    )
)


async def next_number(session: AsyncSession, branch_id: int, business_date: date) -> int:
    """The branch's next number for `business_date`, taken with one upsert in the caller's transaction.

    The row stays locked until the transaction ends, so concurrent orders of a branch get
    consecutive numbers; a rolled-back order gives its number back.
    """
    params = {"b_branch_id": branch_id, "b_business_date": business_date}
    return int((await _NEXT_NUMBER.execute(session, params)).scalar_one())
