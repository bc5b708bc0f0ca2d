"""Initial schema: parents, slices, switches (seeded released/reset), outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from worker.store.types import ExactDecimal, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parents",
        sa.Column("parent_order_id", sa.String(24), primary_key=True),
        sa.Column("strategy_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.BigInteger, nullable=False),
        sa.Column("order_type", sa.String(10), nullable=False),
        sa.Column("limit_price", ExactDecimal, nullable=True),
        sa.Column("stop_price", ExactDecimal, nullable=True),
        sa.Column("time_in_force", sa.String(3), nullable=False),
        sa.Column("duration_seconds", sa.Integer, nullable=False),
        sa.Column("interval_seconds", sa.Integer, nullable=False),
        sa.Column("max_slice_qty", sa.BigInteger, nullable=True),
        sa.Column("distribution", sa.String(12), nullable=False),
        sa.Column("start_at", UTCDateTime, nullable=False),
        sa.Column("trade_date", sa.String(10), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("submitted_by", sa.String(128), nullable=True),
        sa.Column("total_slices", sa.Integer, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("cancel_reason", sa.String(256), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_parents_status", "parents", ["status"])
    op.create_index("ix_parents_strategy", "parents", ["strategy_id", "created_at"])
    op.create_table(
        "slices",
        sa.Column("parent_order_id", sa.String(24), primary_key=True),
        sa.Column("slice_num", sa.Integer, primary_key=True),
        sa.Column("client_order_id", sa.String(24), nullable=False),
        sa.Column("qty", sa.BigInteger, nullable=False),
        sa.Column("scheduled_time", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("broker_order_id", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("sent_at", UTCDateTime, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("client_order_id", name="uq_slices_client_order_id"),
    )
    op.create_index("ix_slices_status_due", "slices", ["status", "scheduled_time"])
    switches = op.create_table(
        "switches",
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("engaged", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("automatic", sa.Boolean, nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        switches,
        [
            {"name": name, "engaged": False, "reason": "initial state", "operator": "migration",
             "automatic": False, "consecutive_failures": 0, "updated_at": now}
            for name in ("kill_switch", "breaker")
        ],
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("exchange", sa.String(8), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("type", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("parent_order_id", sa.String(24), nullable=True),
        sa.Column("headers", sa.JSON, nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("switches")
    op.drop_index("ix_slices_status_due", table_name="slices")
    op.drop_table("slices")
    op.drop_index("ix_parents_strategy", table_name="parents")
    op.drop_index("ix_parents_status", table_name="parents")
    op.drop_table("parents")
