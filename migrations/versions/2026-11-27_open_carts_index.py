"""index open carts for the idle-cart sweep; staff may run the kitchen and take cash

The default `staff` role gains `orders:write` (PROTOCOL.md: `order.mark_paid` and the
kitchen commands are for "staff and up"); a role renamed or already holding it is left alone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ORDERS_WRITE = "orders:write"

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_carts_open_updated_at",
        "carts",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )

    roles = sa.table("roles", sa.column("name", sa.String), sa.column("permissions", sa.JSON))
    connection = op.get_bind()
    row = connection.execute(sa.select(roles.c.permissions).where(roles.c.name == "staff")).first()
    if row is not None:
        permissions = list(row.permissions)
        if ORDERS_WRITE not in permissions and "*" not in permissions:
            connection.execute(
                roles.update().where(roles.c.name == "staff").values(permissions=sorted([*permissions, ORDERS_WRITE]))
            )


def downgrade() -> None:
    op.drop_index(
        "ix_carts_open_updated_at",
        table_name="carts",
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )
