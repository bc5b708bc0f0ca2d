"""cancels: what a parent's cancel did; request_receipts: when a request was first seen.

A parent's cancel keeps its counts (slices canceled, in flight) so that a cancel repeated or
redelivered answers with them again, and whether it asked for the parent's working orders to
be canceled at the broker (and, once done, how many were): that work runs after the commit,
and a restart picks up what is still to do.

A submit without `trade_date`, `start_at` and an AMQP `timestamp` takes its trade date from
the time the worker first saw it; `request_receipts` keeps that time by message id, so a
redelivery after midnight still maps to the same parent.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from worker.store.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cancels",
        sa.Column("parent_order_id", sa.String(24), primary_key=True),
        sa.Column("canceled_slices", sa.Integer, nullable=False),
        sa.Column("in_flight_slices", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("working_orders", sa.Boolean, nullable=False),
        sa.Column("working_orders_canceled", sa.Integer, nullable=True),
        sa.Column("canceled_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "request_receipts",
        sa.Column("message_id", sa.String(255), primary_key=True),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_request_receipts_first_seen", "request_receipts", ["first_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_request_receipts_first_seen", table_name="request_receipts")
    op.drop_table("request_receipts")
    op.drop_table("cancels")
