"""kitchen stations: a branch's grill, fryer, drinks and expo, where lines are routed and bumped

A branch may have stations, each with a code unique in the branch; categories and items
name the station code their lines go to (an item's own over its category's), and an
order's line keeps the code of the station it was routed to at placement. A kitchen
display may belong to a station; `order_stations` holds each station's bump of its part of
an order. Stations are read with the catalogue's copy of the menu (server/orders/
catalogue.py), so their changes raise the catalogue's version like 0008's dayparts. Rows
that exist keep no station: a branch without stations works as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = ("insert", "update", "delete")
RAISE = (
    "INSERT INTO catalogue_version (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = catalogue_version.version + 1"
)
# Added by plain ALTER TABLE, as in 0006: SQLite's batch mode would copy the tables and lose their triggers (0005).
ROUTED = ("categories", "items_live", "order_lines")


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("is_expo", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.CheckConstraint("length(code) >= 1", name=op.f("ck_stations_code_not_empty")),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_stations_branch_id_branches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stations")),
        sa.UniqueConstraint("branch_id", "code", name=op.f("uq_stations_branch_id_code")),
    )
    op.create_index(op.f("ix_stations_branch_id"), "stations", ["branch_id"])
    op.create_table(
        "order_stations",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("bumped_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_stations_order_id_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_order_stations_station_id_stations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("order_id", "station_id", name=op.f("pk_order_stations")),
    )
    op.create_index(op.f("ix_order_stations_station_id"), "order_stations", ["station_id"])
    for table in ROUTED:
        op.execute(f"ALTER TABLE {table} ADD COLUMN station VARCHAR(32)")
    op.execute(
        "ALTER TABLE devices ADD COLUMN station_id INTEGER "
        "CONSTRAINT fk_devices_station_id_stations REFERENCES stations (id)"
    )
    op.create_index(op.f("ix_devices_station_id"), "devices", ["station_id"])
    # A branch's new station changes where the catalogue's copy routes its lines.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER stations_raise_catalogue_version AFTER INSERT OR UPDATE OR DELETE ON stations "
            "FOR EACH STATEMENT EXECUTE FUNCTION raise_catalogue_version()"
        )
    else:
        for event in EVENTS:
            op.execute(
                f"CREATE TRIGGER stations_{event}_raises_catalogue_version AFTER {event.upper()} ON stations "
                f"BEGIN {RAISE}; END"
            )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("DROP TRIGGER stations_raise_catalogue_version ON stations")
    else:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER stations_{event}_raises_catalogue_version")
    op.drop_index(op.f("ix_devices_station_id"), table_name="devices")
    if postgresql:
        op.drop_constraint("fk_devices_station_id_stations", "devices", type_="foreignkey")
    op.drop_column("devices", "station_id")
    for table in reversed(ROUTED):
        op.drop_column(table, "station")
    op.drop_index(op.f("ix_order_stations_station_id"), table_name="order_stations")
    op.drop_table("order_stations")
    op.drop_index(op.f("ix_stations_branch_id"), table_name="stations")
    op.drop_table("stations")
