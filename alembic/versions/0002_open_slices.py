"""parents.open_slices: how many of a parent's slices are not yet terminal.

Every status change keeps it in step, so the slice that takes it to zero knows it is the last
one and completes the parent; the hot path needs no read of the other slices under a lock.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("parents") as batch:
        batch.add_column(
            sa.Column("open_slices", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE parents SET open_slices = (SELECT count(*) FROM slices"
        " WHERE slices.parent_order_id = parents.parent_order_id"
        " AND slices.status IN ('scheduled', 'submitting'))"
    )


def downgrade() -> None:
    with op.batch_alter_table("parents") as batch:
        batch.drop_column("open_slices")
