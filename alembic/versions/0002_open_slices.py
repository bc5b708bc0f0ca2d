"""parents.open_slices; partial indexes on the slices still to fire or in flight.

open_slices counts a parent's slices that are not yet terminal. Every status change keeps it
in step, so the slice that takes it to zero knows it is the last one and completes the parent;
the hot path needs no read of the other slices under a lock.

ix_slices_status_due (every slice, by status and due time) gives way to two partial indexes:
the planner used the old one to cancel a parent by scanning every scheduled slice of every
parent, and every status change took a new entry in it.

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
    op.drop_index("ix_slices_status_due", table_name="slices")
    for name, status in (("ix_slices_scheduled_due", "scheduled"),
                         ("ix_slices_submitting", "submitting")):
        where = sa.text(f"status = '{status}'")
        op.create_index(name, "slices", ["scheduled_time"], postgresql_where=where,
                        sqlite_where=where)


def downgrade() -> None:
    op.drop_index("ix_slices_submitting", table_name="slices")
    op.drop_index("ix_slices_scheduled_due", table_name="slices")
    op.create_index("ix_slices_status_due", "slices", ["status", "scheduled_time"])
    with op.batch_alter_table("parents") as batch:
        batch.drop_column("open_slices")
