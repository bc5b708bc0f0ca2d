"""risk_limits, access_grants, risk_audit, parent_notionals, slice_turns: pre-trade risk
limits and who may trade.

Limits are kept per strategy, with a default row '*', as JSON of the keys set; grants by AMQP
user id. Every change of either is an audit row (who, when, old and new). Each accepted
parent's notional at intake is kept for the daily limit, and each slice's turn under
max_slices_per_minute for the rate.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from worker.store.types import ExactDecimal, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_limits",
        sa.Column("strategy_id", sa.String(64), primary_key=True),
        sa.Column("limits", sa.JSON, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "access_grants",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("strategies", sa.JSON, nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("operator", sa.Boolean, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "risk_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("old", sa.JSON, nullable=True),
        sa.Column("new", sa.JSON, nullable=True),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_risk_audit_subject", "risk_audit", ["kind", "subject", "changed_at"])
    op.create_table(
        "parent_notionals",
        sa.Column("parent_order_id", sa.String(24), primary_key=True),
        sa.Column("strategy_id", sa.String(64), nullable=False),
        sa.Column("trade_date", sa.String(10), nullable=False),
        sa.Column("notional", ExactDecimal, nullable=False),
        sa.Column("reference_price", ExactDecimal, nullable=False),
    )
    op.create_index("ix_parent_notionals_day", "parent_notionals", ["strategy_id", "trade_date"])
    op.create_table(
        "slice_turns",
        sa.Column("client_order_id", sa.String(24), primary_key=True),
        sa.Column("strategy_id", sa.String(64), nullable=False),
        sa.Column("turn_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_slice_turns_strategy", "slice_turns", ["strategy_id", "turn_at"])


def downgrade() -> None:
    op.drop_index("ix_slice_turns_strategy", table_name="slice_turns")
    op.drop_table("slice_turns")
    op.drop_index("ix_parent_notionals_day", table_name="parent_notionals")
    op.drop_table("parent_notionals")
    op.drop_index("ix_risk_audit_subject", table_name="risk_audit")
    op.drop_table("risk_audit")
    op.drop_table("access_grants")
    op.drop_table("risk_limits")
