"""List pages: `?limit=&offset=` in, `{"items", "total", "limit", "offset"}` out."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.validation import INT32_MAX, Input

T = TypeVar("T")


class PageQuery(Input):
    """Paging parameters every list route accepts; subclass it to add filters."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=500, description="how many items at most")
    offset: int = Field(default=0, ge=0, le=INT32_MAX, description="how many items to skip")


class Page(BaseModel, Generic[T]):
    """One page of a list, with the total count of matching items."""

    items: list[T]
    total: int
    limit: int
    offset: int


async def fetch_page(session: AsyncSession, statement: Select[Any], query: PageQuery) -> tuple[list[Any], int]:
    """The rows of one page of `statement` (already filtered and ordered) and the total count."""
    total = await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = (await session.scalars(statement.limit(query.limit).offset(query.offset))).unique().all()
    return list(rows), int(total or 0)
