"""Hot statements: written once in SQLAlchemy Core, compiled once per dialect, run straight on the driver.

    _MOVE = Prepared(update(orders).where(...).values(...).returning(orders.c.version))
    version = await _MOVE.scalar(session, {"order_id": 7, ...})

An order's commands run a few dozen statements; through a session each one pays for
SQLAlchemy's execution machinery (cache-key lookup, execution context, result metadata,
ORM loading) several times what the driver itself costs. A `Prepared` statement keeps the
SQL its dialect compiled, the order of its parameters and the type conversions of its
parameters and columns, and runs on the driver connection of the session's transaction
(asyncpg, whose own cache keeps it prepared, or aiosqlite). Rows come back as plain named
tuples, converted as SQLAlchemy converts them (enums, UTC timestamps, JSON), so a row
reads the same on both databases.

What it does not do, so that what it does stays exact: Python-side column defaults and
`onupdate`s (a statement sets those columns itself), and expanding `IN` parameters. Both
are refused when the statement is compiled. It runs inside the session's transaction, after
anything the session has flushed; the session does not see its changes in the objects it
holds, so code uses one or the other for a row. Errors are SQLAlchemy's (an
`IntegrityError` for a duplicate key, say), and the engine's `before_cursor_execute`
listeners hear each statement, as they do for the session's own.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

from sqlalchemy import ColumnElement, exc, literal
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

T = TypeVar("T")
Row = Any  # a named tuple with the statement's column names (each statement has its own class)

_DRIVER = "prepared.driver"  # where a session keeps its transaction's driver connection (session.info)


@dataclass(frozen=True)
class _Compiled:
    """A statement as one dialect runs it."""

    sql: str
    names: tuple[str, ...]  # parameter names in positional order
    defaults: Mapping[str, Any]  # values of parameters the statement holds itself (literals)
    bind: Mapping[str, Callable[[Any], Any]]  # parameter name -> conversion to the driver's value
    columns: tuple[Callable[[Any], Any] | None, ...]  # per result column: conversion from the driver's value
    row: type[tuple[Any, ...]] | None  # the named tuple of a row; None when the statement names no columns


class Prepared:
    """A Core statement compiled once per dialect and run on the driver connection of a session's transaction."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The statement as `dialect` runs it (compiled the first time it is asked for)."""
        form = self._compiled.get(dialect.name)
        if form is None:
            form = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return form

    async def rows(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Every row the statement returns (none for a statement without RETURNING)."""
        driver = await _driver(session)
        form = self.compiled(driver.dialect)
        return await driver.run(form, _arguments(form, params or {}))

    async def first(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> Row | None:
        """The first row, or None."""
        rows = await self.rows(session, params)
        return rows[0] if rows else None

    async def scalar(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None when there is no row."""
        rows = await self.rows(session, params)
        return rows[0][0] if rows else None

    async def execute(self, session: AsyncSession, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement whose rows are not wanted."""
        await self.rows(session, params)


def one_of(column: ColumnElement[T], values: Iterable[T]) -> ColumnElement[bool]:
    """`column IN (values)` with one parameter per value: `column.in_(values)` is an expanding parameter."""
    return column.in_([literal(value, column.type) for value in values])


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    if compiled.insert_prefetch or compiled.update_prefetch:
        defaulted = [column.name for column in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        raise ValueError(f"a prepared statement sets every column with a Python default itself: {defaulted}")
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError("a prepared statement cannot take an expanding IN parameter: for fixed values use one_of()")
    names = tuple(compiled.positiontup or ())
    given = compiled.construct_params(_check=False) or {}
    defaults = {name: value for name, value in given.items() if value is not None}
    bind = {
        getattr(key, "key", key): cast(Callable[[Any], Any], process)
        for key, process in compiled._bind_processors.items()
    }
    result = compiled._result_columns or []
    columns = tuple(entry.type._cached_result_processor(dialect, None) for entry in result)
    row = namedtuple("Row", [entry.keyname for entry in result], rename=True) if result else None
    return _Compiled(compiled.string, names, defaults, bind, columns, row)


def _arguments(form: _Compiled, params: Mapping[str, Any]) -> list[Any]:
    arguments = []
    for name in form.names:
        try:
            value = params[name] if name in params else form.defaults[name]
        except KeyError:
            raise ValueError(f"a value is required for parameter {name!r}") from None
        process = form.bind.get(name)
        arguments.append(value if process is None or value is None else process(value))
    return arguments


class _Driver:
    """The driver connection of one session's transaction, with the dialect that speaks to it."""

    def __init__(self, connection: Connection, adapted: Any) -> None:
        self.connection = connection  # the engine's (sync) connection: its listeners hear each statement
        self.dialect = connection.dialect
        self.adapted = adapted  # SQLAlchemy's DBAPI adapter around the driver connection
        self.driver = adapted.driver_connection
        self.asyncpg = self.dialect.driver == "asyncpg"

    async def run(self, form: _Compiled, arguments: list[Any]) -> list[Row]:
        connection = self.connection
        if connection._has_events or connection.engine._has_events:
            connection.dispatch.before_cursor_execute(connection, None, form.sql, arguments, None, False)
        try:
            if self.asyncpg:
                # SQLAlchemy's adapter opens the server's transaction on its first statement; this may be the first.
                if self.adapted._transaction is None:
                    await self.adapted._start_transaction()
                raw: Sequence[Sequence[Any]] = await self.driver.fetch(form.sql, *arguments)
            else:
                cursor = await self.driver.execute(form.sql, arguments)
                raw = await cursor.fetchall()
                await cursor.close()
        except Exception as error:
            self._raise(error, form, arguments)
        if form.row is None:  # text without .columns(): no names or conversions to apply
            return [tuple(values) for values in raw]
        make, columns = form.row._make, form.columns  # type: ignore[attr-defined]
        if not any(columns):
            return [make(values) for values in raw]
        return [
            make(
                [
                    value if process is None or value is None else process(value)
                    for process, value in zip(columns, values, strict=True)
                ]
            )
            for values in raw
        ]

    def _raise(self, error: Exception, form: _Compiled, arguments: list[Any]) -> NoReturn:
        """Raise `error` as SQLAlchemy would have: a DBAPI error of the adapter, wrapped as `sqlalchemy.exc`'s."""
        dbapi = self.dialect.loaded_dbapi
        try:
            if self.asyncpg and not isinstance(error, dbapi.Error):
                self.adapted._handle_exception(error)
            raise error
        except dbapi.Error as dbapi_error:
            raise exc.DBAPIError.instance(form.sql, arguments, dbapi_error, dbapi.Error) from error


async def _driver(session: AsyncSession) -> _Driver:
    driver: _Driver | None = session.info.get(_DRIVER)
    if driver is not None and driver.connection is not None and not driver.connection.closed:
        return driver
    connection = await session.connection()  # begins the session's transaction when it has not yet
    raw = await connection.get_raw_connection()
    driver = session.info[_DRIVER] = _Driver(connection.sync_connection, raw.dbapi_connection)  # type: ignore[arg-type]
    return driver
