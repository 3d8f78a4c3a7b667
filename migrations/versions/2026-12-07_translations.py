"""translations: the catalogue's names and descriptions in several languages, and each branch's languages

Categories, items, option groups and choices get `translations` ({locale: {"name",
"description"}}); a branch its default locale, the locales its kiosks offer and its
kitchen's locale; a cart the locale its kiosk shows it in, an order its customer's; an
order line its name and options in that locale (`display_name`, `display_options`) beside
the kitchen's. Rows that exist already: no translations, branches in English only
(default, offered and kitchen `en`), carts and orders of no locale (the branch's default;
old lines' names serve everyone).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Added by plain ALTER TABLE, as in 0006: SQLite's batch mode would copy the tables and lose the catalogue's
# triggers (0005), which go on raising its version when a translation changes.
TRANSLATED = ("categories", "items_live", "option_groups", "option_choices")
BRANCH_COLUMNS = (
    ("default_locale", "VARCHAR(16) DEFAULT 'en' NOT NULL"),
    ("locales", """JSON DEFAULT '["en"]' NOT NULL"""),
    ("kitchen_locale", "VARCHAR(16) DEFAULT 'en' NOT NULL"),
)


def upgrade() -> None:
    for table in TRANSLATED:
        op.execute(f"ALTER TABLE {table} ADD COLUMN translations JSON DEFAULT '{{}}' NOT NULL")
    for column, definition in BRANCH_COLUMNS:
        op.execute(f"ALTER TABLE branches ADD COLUMN {column} {definition}")
    for table in ("carts", "orders"):
        op.add_column(table, sa.Column("locale", sa.String(length=16), nullable=True))
    op.add_column("order_lines", sa.Column("display_name", sa.String(length=120), nullable=True))
    op.add_column("order_lines", sa.Column("display_options", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): the tables, and the catalogue's triggers on them, stay.
    op.drop_column("order_lines", "display_options")
    op.drop_column("order_lines", "display_name")
    for table in ("orders", "carts"):
        op.drop_column(table, "locale")
    for column, _ in reversed(BRANCH_COLUMNS):
        op.drop_column("branches", column)
    for table in reversed(TRANSLATED):
        op.drop_column(table, "translations")
