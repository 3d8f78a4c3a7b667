"""What the migration tests share: the tables of a database, JSON as either database returns it, and rows to make."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import persistence.tables  # noqa: F401  (registers every table on Base.metadata)


def table_names(connection: Connection) -> set[str]:
    """The names of the tables the connection's database has."""
    return set(inspect(connection).get_table_names())


def json_value(value: Any) -> Any:
    """A JSON column's value as read without its type: text on SQLite, already parsed on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


# Rows that every revision since the first accepts, for the tests that make data before an upgrade: branch 1 with
# kiosk 1; category 1 with item 1, a burger at 900; its option group 1 with choice 1; open cart 1 of the kiosk; and
# paid order 1 of one burger.
A_KIOSK = (
    "INSERT INTO branches (id, name, currency, timezone, tax_rate_bp, is_active)"
    " VALUES (1, 'Mitte', 'EUR', 'UTC', 1900, true)",
    "INSERT INTO devices (id, branch_id, kind, name, secret_hash, secret_version, is_active, info)"
    " VALUES (1, 1, 'kiosk', 'k', 'x', 1, true, '{}')",
)
A_BURGER = (
    "INSERT INTO categories (id, name, position) VALUES (1, 'Mains', 0)",
    "INSERT INTO items_live (id, category_id, name, price, position) VALUES (1, 1, 'Burger', 900, 0)",
)
ITS_EXTRAS = (
    "INSERT INTO option_groups (id, item_id, name, min_select, max_select, position) VALUES (1, 1, 'Extras', 0, 1, 0)",
    "INSERT INTO option_choices (id, group_id, name, price_delta, is_default, position)"
    " VALUES (1, 1, 'Cheese', 80, false, 0)",
)
AN_OPEN_CART = ("INSERT INTO carts (id, branch_id, device_id, status, version) VALUES (1, 1, 1, 'open', 1)",)
A_PAID_ORDER = (
    "INSERT INTO orders (id, branch_id, number, business_date, status, currency, subtotal, tax, total)"
    " VALUES (1, 1, 1, '2026-12-07', 'paid', 'EUR', 756, 144, 900)",
    "INSERT INTO order_lines (id, order_id, item_id, name, qty, unit_price, options, line_total)"
    " VALUES (1, 1, 1, 'Burger', 1, 900, '[]', 900)",
)
