"""orders, payments and carts carry a version, raised by every change

Devices keep the newest of each order, payment and cart by it. Rows that exist already
start at 1, like new ones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("orders", "payments", "carts")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False))


def downgrade() -> None:
    # Plain DROP COLUMN: SQLite has it since 3.35, which the server needs anyway (RETURNING).
    for table in TABLES:
        op.drop_column(table, "version")
