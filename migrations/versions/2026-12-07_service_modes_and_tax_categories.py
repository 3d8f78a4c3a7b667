"""service modes and tax categories: eat in or take away, and a tax rate per category and mode

Items get a tax category; a branch lists the service modes it offers and its rate for each
category in each mode. Carts and orders carry their mode, an order its tax per rate and
each of its lines the rate it was charged at. Rows that exist already: carts and orders
are eat-in, branches offer both modes with no rates of their own (every item at the
branch's one rate, as before), and old order lines have no rate.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Columns are added by plain ALTER TABLE ... ADD COLUMN with their constraints in the column's own clause, which
# both databases take: SQLite's batch mode would copy the tables instead, losing the catalogue's triggers on
# items_live (migration 0005).
SERVICE_MODE = (
    "service_mode VARCHAR(32) DEFAULT 'eat_in' NOT NULL "
    "CONSTRAINT ck_{table}_service_mode CHECK (service_mode IN ('eat_in', 'takeaway'))"
)


def upgrade() -> None:
    op.create_table(
        "tax_categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_tax_categories_name")),
    )
    op.execute(
        "ALTER TABLE items_live ADD COLUMN tax_category_id INTEGER "
        "CONSTRAINT fk_items_live_tax_category_id_tax_categories REFERENCES tax_categories (id)"
    )
    op.create_index(op.f("ix_items_live_tax_category_id"), "items_live", ["tax_category_id"])
    op.execute("""ALTER TABLE branches ADD COLUMN service_modes JSON DEFAULT '["eat_in", "takeaway"]' NOT NULL""")
    op.execute("ALTER TABLE branches ADD COLUMN tax_rates JSON DEFAULT '[]' NOT NULL")
    for table in ("carts", "orders"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN " + SERVICE_MODE.format(table=table))
    op.execute("ALTER TABLE orders ADD COLUMN taxes JSON DEFAULT '[]' NOT NULL")
    op.add_column("order_lines", sa.Column("tax_rate_bp", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+) takes a column's own constraints with it; an index must go first.
    op.drop_column("order_lines", "tax_rate_bp")
    for table, column in (("orders", "taxes"), ("orders", "service_mode"), ("carts", "service_mode")):
        op.drop_column(table, column)
    op.drop_column("branches", "tax_rates")
    op.drop_column("branches", "service_modes")
    op.drop_index(op.f("ix_items_live_tax_category_id"), table_name="items_live")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("fk_items_live_tax_category_id_tax_categories", "items_live", type_="foreignkey")
    op.drop_column("items_live", "tax_category_id")
    op.drop_table("tax_categories")
