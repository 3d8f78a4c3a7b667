"""managers may refund; payments are found by the payment API's id

The default `manager` role gains `payments:refund` (refunds are for admins and the
branch's manager); a role renamed or already holding it is left alone. Webhooks that do
not carry our metadata are matched to a payment by `provider_ref`, so it is indexed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

PAYMENTS_REFUND = "payments:refund"

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_payments_provider_ref", "payments", ["provider_ref"], unique=False)

    roles = sa.table("roles", sa.column("name", sa.String), sa.column("permissions", sa.JSON))
    connection = op.get_bind()
    row = connection.execute(sa.select(roles.c.permissions).where(roles.c.name == "manager")).first()
    if row is not None:
        permissions = list(row.permissions)
        if PAYMENTS_REFUND not in permissions and "*" not in permissions:
            connection.execute(
                roles.update()
                .where(roles.c.name == "manager")
                .values(permissions=sorted([*permissions, PAYMENTS_REFUND]))
            )


def downgrade() -> None:
    op.drop_index("ix_payments_provider_ref", table_name="payments")
