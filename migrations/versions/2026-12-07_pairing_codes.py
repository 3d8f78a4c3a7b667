"""pairing codes: devices enrol by a six-digit code an admin claims, or by a one-step link

A fresh app asks for a code and polls with a token only it holds (stored hashed) until
someone claims the code for a device; its next poll gets the device's id and a new secret.
A link's token is a row claimed from the start. Nothing existing changes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pairing_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=6), nullable=True),
        sa.Column("poll_token_hash", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_pairing_codes_device_id_devices"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["claimed_by_user_id"],
            ["users.id"],
            name=op.f("fk_pairing_codes_claimed_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairing_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_pairing_codes_code")),
        sa.UniqueConstraint("poll_token_hash", name=op.f("uq_pairing_codes_poll_token_hash")),
    )
    op.create_index(op.f("ix_pairing_codes_device_id"), "pairing_codes", ["device_id"])
    op.create_index(op.f("ix_pairing_codes_expires_at"), "pairing_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pairing_codes_expires_at"), table_name="pairing_codes")
    op.drop_index(op.f("ix_pairing_codes_device_id"), table_name="pairing_codes")
    op.drop_table("pairing_codes")
