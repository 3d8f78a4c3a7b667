"""dayparts: time windows of the day when items and categories are sold (breakfast until 11:00)

A daypart is a window of local time, in each branch's own time zone; an item and a category
may name one, and an item is sold only while both its own and its category's windows hold
the branch's time. Dayparts are part of the catalogue: their changes raise its version, by
the same triggers as migration 0005's. Rows that exist keep no daypart: sold all day, as
before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = ("insert", "update", "delete")
RAISE = (
    "INSERT INTO catalogue_version (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = catalogue_version.version + 1"
)
# Added by plain ALTER TABLE, as in 0006: SQLite's batch mode would copy the tables and lose their triggers (0005).
WINDOWED = ("categories", "items_live")


def upgrade() -> None:
    op.create_table(
        "dayparts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("starts_at", sa.Time(), nullable=False),
        sa.Column("ends_at", sa.Time(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dayparts")),
        sa.UniqueConstraint("name", name=op.f("uq_dayparts_name")),
    )
    for table in WINDOWED:
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN daypart_id INTEGER "
            f"CONSTRAINT fk_{table}_daypart_id_dayparts REFERENCES dayparts (id)"
        )
        op.create_index(op.f(f"ix_{table}_daypart_id"), table, ["daypart_id"])
    # A daypart's new hours change what the catalogue's copies say of its items' windows.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER dayparts_raise_catalogue_version AFTER INSERT OR UPDATE OR DELETE ON dayparts "
            "FOR EACH STATEMENT EXECUTE FUNCTION raise_catalogue_version()"
        )
    else:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER dayparts_{event}_raises_catalogue_version AFTER {event.upper()} ON dayparts "
                f"BEGIN {RAISE}; END"
            )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in reversed(WINDOWED):
        op.drop_index(op.f(f"ix_{table}_daypart_id"), table_name=table)
        if postgresql:
            op.drop_constraint(f"fk_{table}_daypart_id_dayparts", table, type_="foreignkey")
        op.drop_column(table, "daypart_id")
    if postgresql:
        op.execute("DROP TRIGGER dayparts_raise_catalogue_version ON dayparts")
    else:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER dayparts_{event}_raises_catalogue_version")
    op.drop_table("dayparts")
