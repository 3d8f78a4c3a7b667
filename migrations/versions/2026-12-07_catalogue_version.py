"""catalogue_version: how many times the catalogue changed, so that a process can keep a copy of it

One row, raised by triggers on categories, items, option groups and choices in the
transaction of every change to them, whoever writes it (the server, a script, psql). It
starts without a row (version 0): a process's copy is read afresh the first time, as after
any change. PostgreSQL raises it once per statement; SQLite, which has only row triggers,
once per row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATALOGUE = ("categories", "items_live", "option_groups", "option_choices")
EVENTS = ("insert", "update", "delete")
RAISE = (
    "INSERT INTO catalogue_version (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = catalogue_version.version + 1"
)


def upgrade() -> None:
    op.create_table(
        "catalogue_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_version")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION raise_catalogue_version() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {RAISE}; RETURN NULL; END $$"
        )
        for name in CATALOGUE:
            op.execute(
                f"CREATE TRIGGER {name}_raise_catalogue_version AFTER INSERT OR UPDATE OR DELETE ON {name} "
                "FOR EACH STATEMENT EXECUTE FUNCTION raise_catalogue_version()"
            )
    else:
        for name in CATALOGUE:
            for event in EVENTS:
                op.execute(
                    f"CREATE TRIGGER {name}_{event}_raises_catalogue_version AFTER {event.upper()} ON {name} "
                    f"BEGIN {RAISE}; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in CATALOGUE:
            op.execute(f"DROP TRIGGER {name}_raise_catalogue_version ON {name}")
        op.execute("DROP FUNCTION raise_catalogue_version()")
    else:
        for name in CATALOGUE:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER {name}_{event}_raises_catalogue_version")
    op.drop_table("catalogue_version")
