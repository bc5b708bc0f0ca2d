"""Fills: what executed, per slice and per parent, and every fill applied.

Contract v2 follows each slice's order until it ends (`filled` or `closed`). Slices keep their
cumulative filled qty and the exact notional of their fills (the average price is derived,
notional / filled qty, rounded as worker.core.fills does), and the qty the plan gave them when
catch-up sent another (`planned_qty`). Parents keep the submit's execution fields, their filled
qty, notional, the qty still working at the broker and, once completed, the outcome.

`ix_slices_submitted` (partial) finds the orders working at the broker for reconciliation.

`fills` holds every fill applied; its key (client_order_id, cumulative filled qty after the
fill) makes a replayed broker update a no-op.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from worker.store.types import ExactDecimal, UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("slices") as batch:
        batch.add_column(sa.Column("filled_qty", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("fill_notional", ExactDecimal(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("planned_qty", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("parents") as batch:
        batch.add_column(sa.Column("slice_end", sa.String(8), nullable=False,
                                   server_default="cancel"))
        batch.add_column(sa.Column("catch_up", sa.Boolean(), nullable=False,
                                   server_default=sa.text("true")))
        batch.add_column(sa.Column("max_catch_up_ratio", ExactDecimal(), nullable=False,
                                   server_default="2"))
        batch.add_column(sa.Column("keep_working_after_end", sa.Boolean(), nullable=False,
                                   server_default=sa.text("false")))
        batch.add_column(sa.Column("filled_qty", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("notional", ExactDecimal(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("working_qty", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("outcome", sa.String(8), nullable=True))
    where = sa.text("status = 'submitted'")
    op.create_index("ix_slices_submitted", "slices", ["updated_at"], postgresql_where=where,
                    sqlite_where=where)
    op.create_table(
        "fills",
        sa.Column("client_order_id", sa.String(24), primary_key=True),
        sa.Column("filled_qty", sa.BigInteger, primary_key=True),
        sa.Column("parent_order_id", sa.String(24), nullable=False),
        sa.Column("slice_num", sa.Integer, nullable=False),
        sa.Column("fill_qty", sa.BigInteger, nullable=False),
        sa.Column("fill_price", ExactDecimal(), nullable=False),
        sa.Column("filled_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_fills_parent", "fills", ["parent_order_id", "slice_num"])


def downgrade() -> None:
    op.drop_index("ix_fills_parent", table_name="fills")
    op.drop_table("fills")
    op.drop_index("ix_slices_submitted", table_name="slices")
    with op.batch_alter_table("parents") as batch:
        for name in ("outcome", "working_qty", "notional", "filled_qty",
                     "keep_working_after_end", "max_catch_up_ratio", "catch_up", "slice_end"):
            batch.drop_column(name)
    with op.batch_alter_table("slices") as batch:
        for name in ("planned_qty", "fill_notional", "filled_qty"):
            batch.drop_column(name)
