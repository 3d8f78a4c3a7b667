"""The declarative base, naming conventions and column types every table shares."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TypeVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    Integer,
    MetaData,
    Table,
    inspect,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names so that Alembic can drop and alter them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every mapped table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table(entity: type[Base]) -> Table:
    """The Core table of a mapped class: hot statements on it skip the ORM's statement machinery."""
    return cast(Table, entity.__table__)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp as clients get it everywhere: `2026-11-26T12:00:00.123Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone, so values come back naive there; this makes both databases
    hand the same aware datetimes to the code.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

Json = JSON()


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A string column limited to the members of `enum_cls` by a CHECK constraint."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


# Spelled the same on SQLite and PostgreSQL, unlike now().
CURRENT_TIMESTAMP = text("CURRENT_TIMESTAMP")


class Timestamps:
    """`created_at` and `updated_at`, set by the database and the ORM."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=CURRENT_TIMESTAMP)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=CURRENT_TIMESTAMP
    )


class Versioned:
    """`version`: 1 when the row is inserted, one more with every UPDATE of it, in the UPDATE itself.

    The column's own `onupdate`, so that no statement can forget it: ORM flushes and Core
    `update()` statements alike raise it unless they set it themselves (none does). A flush
    reads the new value back in the same statement (RETURNING), so a flushed row holds it;
    a Core UPDATE returns it where the caller needs it.
    Devices keep the newest of each order, payment and cart by it: events published right
    after commit can reach a channel out of commit order across instances.
    """

    version: Mapped[int] = mapped_column(default=1, server_default=text("1"), onupdate=literal_column("version") + 1)

    __mapper_args__ = {"eager_defaults": True}


R = TypeVar("R")


def flushed(row: R) -> R:
    """`row`, refusing it while it holds changes not yet flushed: its `version` does not count them yet.

    A plain record read by a prepared statement (persistence/prepared.py) is what the database holds, and passes.
    """
    state = inspect(row, raiseerr=False)
    if state is not None and state.persistent and state.modified:
        raise RuntimeError(f"{type(row).__name__} {state.identity} has unflushed changes: flush before describing it")
    return row
