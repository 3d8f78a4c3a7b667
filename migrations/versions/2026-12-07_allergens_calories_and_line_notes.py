"""allergens, calories and line notes: what is in an item, and what the customer asked the kitchen to mind

Items and option choices get their allergens (the 14 of EU law, a JSON list) and calories (kcal; an item's at
least 0, a choice's what it adds, negative for one that takes something away); cart and order lines get the note
the customer entered ("no peanuts please"). Rows that exist already: no allergens, calories not known, no note.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0006: plain ALTER TABLE ... ADD COLUMN, constraints in the column's own clause, on both databases; SQLite's
# batch mode would copy items_live and option_choices, losing their catalogue triggers (migration 0005).
ADDED = (
    ("items_live", "allergens JSON DEFAULT '[]' NOT NULL"),
    ("items_live", "calories INTEGER CONSTRAINT ck_items_live_calories_not_negative CHECK (calories >= 0)"),
    ("option_choices", "allergens JSON DEFAULT '[]' NOT NULL"),
    ("option_choices", "calories INTEGER"),
    ("cart_lines", "note VARCHAR(200)"),
    ("order_lines", "note VARCHAR(200)"),
)


def upgrade() -> None:
    for table, column in ADDED:
        op.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+) takes a column's own constraints with it.
    for table, column in reversed(ADDED):
        op.drop_column(table, column.split()[0])
