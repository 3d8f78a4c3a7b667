"""What the migration tests share: the tables of a database, and JSON as either database returns it."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import persistence.tables  # noqa: F401  (registers every table on Base.metadata)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _json(value: Any) -> Any:
    """A JSON column's value as read without its type: text on SQLite, already parsed on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value
