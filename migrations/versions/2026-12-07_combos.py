"""combos: items sold as slots (main, side, drink), each filled with one of its choices of items

A combo is an item with slots (`combo_slots`); each slot lists the items it may be filled with
(`combo_slot_choices`, each with its upcharge over the combo's price). Both are catalogue tables: their changes
raise `catalogue_version` by the same triggers as migrations 0005 and 0008. Cart lines keep the slots as the
customer filled them, order lines the components as priced at placement (`components`, JSON lists, in the
kitchen's locale; `display_components` in the order's, where they differ); rows that exist get [] (not combos).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = ("insert", "update", "delete")
RAISE = (
    "INSERT INTO catalogue_version (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = catalogue_version.version + 1"
)
CATALOGUE = ("combo_slots", "combo_slot_choices")
# As in 0007: plain ALTER TABLE ... ADD COLUMN on both databases.
LINES = ("cart_lines", "order_lines")


def upgrade() -> None:
    op.create_table(
        "combo_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        # Its name in other languages, as 0009 gave the other catalogue rows.
        sa.Column("translations", sa.JSON(), server_default=sa.text("'{}'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items_live.id"], name=op.f("fk_combo_slots_item_id_items_live"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_combo_slots")),
    )
    op.create_index(op.f("ix_combo_slots_item_id"), "combo_slots", ["item_id"], unique=False)
    op.create_table(
        "combo_slot_choices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("upcharge", sa.Integer(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("upcharge >= 0", name=op.f("ck_combo_slot_choices_upcharge_not_negative")),
        sa.ForeignKeyConstraint(
            ["slot_id"], ["combo_slots.id"], name=op.f("fk_combo_slot_choices_slot_id_combo_slots"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items_live.id"], name=op.f("fk_combo_slot_choices_item_id_items_live")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_combo_slot_choices")),
        sa.UniqueConstraint("slot_id", "item_id", name=op.f("uq_combo_slot_choices_slot_id_item_id")),
    )
    op.create_index(op.f("ix_combo_slot_choices_slot_id"), "combo_slot_choices", ["slot_id"], unique=False)
    op.create_index(op.f("ix_combo_slot_choices_item_id"), "combo_slot_choices", ["item_id"], unique=False)
    for table in LINES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN components JSON DEFAULT '[]' NOT NULL")
    # The components in the order's locale, where they differ from the kitchen's (as `display_options`, 0009).
    op.add_column("order_lines", sa.Column("display_components", sa.JSON(), nullable=True))
    # A combo's slots and choices are what the catalogue's copies price its lines by.
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in CATALOGUE:
        if postgresql:
            op.execute(
                f"CREATE TRIGGER {table}_raise_catalogue_version AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION raise_catalogue_version()"
            )
        else:
            for event in EVENTS:
                op.execute(
                    f"CREATE TRIGGER {table}_{event}_raises_catalogue_version AFTER {event.upper()} ON {table} "
                    f"BEGIN {RAISE}; END"
                )


def downgrade() -> None:
    op.drop_column("order_lines", "display_components")
    for table in reversed(LINES):
        op.drop_column(table, "components")
    # Dropping a table drops its triggers on both databases.
    op.drop_index(op.f("ix_combo_slot_choices_item_id"), table_name="combo_slot_choices")
    op.drop_index(op.f("ix_combo_slot_choices_slot_id"), table_name="combo_slot_choices")
    op.drop_table("combo_slot_choices")
    op.drop_index(op.f("ix_combo_slots_item_id"), table_name="combo_slots")
    op.drop_table("combo_slots")
