"""The schema. Alembic migrations create it; a test checks that they agree."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)

from worker.store.types import ExactDecimal, UTCDateTime

metadata = MetaData()

parents = Table(
    "parents",
    metadata,
    Column("parent_order_id", String(24), primary_key=True),
    Column("strategy_id", String(64), nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("order_type", String(10), nullable=False),
    Column("limit_price", ExactDecimal, nullable=True),
    Column("stop_price", ExactDecimal, nullable=True),
    Column("time_in_force", String(3), nullable=False),
    Column("duration_seconds", Integer, nullable=False),
    Column("interval_seconds", Integer, nullable=False),
    Column("max_slice_qty", BigInteger, nullable=True),
    Column("distribution", String(12), nullable=False),
    Column("start_at", UTCDateTime, nullable=False),
    Column("trade_date", String(10), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("submitted_by", String(128), nullable=True),
    Column("total_slices", Integer, nullable=False),
    # Slices not yet terminal, kept in step by every status change: the finisher that takes
    # it to zero completes the parent, without a lock held across a read of its slices.
    Column("open_slices", Integer, nullable=False, server_default="0"),
    Column("status", String(10), nullable=False),
    Column("cancel_reason", String(256), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Execution (migration 0004): the submit's fields and what has executed so far. Notional is
    # exact decimal text: sums are made in Python (core.fills) under the row's lock.
    Column("slice_end", String(8), nullable=False, server_default="cancel"),
    Column("catch_up", Boolean, nullable=False, server_default=text("true")),
    Column("max_catch_up_ratio", ExactDecimal, nullable=False, server_default="2"),
    Column("keep_working_after_end", Boolean, nullable=False, server_default=text("false")),
    Column("filled_qty", BigInteger, nullable=False, server_default="0"),
    Column("notional", ExactDecimal, nullable=False, server_default="0"),
    Column("working_qty", BigInteger, nullable=False, server_default="0"),
    Column("outcome", String(8), nullable=True),
    Index("ix_parents_status", "status"),
    Index("ix_parents_strategy", "strategy_id", "created_at"),
)

slices = Table(
    "slices",
    metadata,
    Column("parent_order_id", String(24), primary_key=True),
    Column("slice_num", Integer, primary_key=True),
    Column("client_order_id", String(24), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("scheduled_time", UTCDateTime, nullable=False),
    Column("status", String(24), nullable=False),
    Column("broker_order_id", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("filled_qty", BigInteger, nullable=False, server_default="0"),
    Column("fill_notional", ExactDecimal, nullable=False, server_default="0"),
    Column("planned_qty", BigInteger, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),  # last: rows.slice_tuple relies on it
    UniqueConstraint("client_order_id", name="uq_slices_client_order_id"),
    # Partial: only slices still to fire (the sweeper's overdue scan) or in flight (recovery).
    # An index over every status made the planner scan all scheduled slices of every parent
    # to cancel one, and took an entry for every status change.
    Index("ix_slices_scheduled_due", "scheduled_time",
          postgresql_where=text("status = 'scheduled'"), sqlite_where=text("status = 'scheduled'")),
    Index("ix_slices_submitting", "scheduled_time",
          postgresql_where=text("status = 'submitting'"),
          sqlite_where=text("status = 'submitting'")),
    # Orders working at the broker, by their last news: reconciliation's scan.
    Index("ix_slices_submitted", "updated_at",
          postgresql_where=text("status = 'submitted'"),
          sqlite_where=text("status = 'submitted'")),
)

# Every fill applied, keyed by the order and its cumulative filled qty after the fill: the
# same broker figure applied twice hits the key and adds nothing. The execution report reads it.
fills = Table(
    "fills",
    metadata,
    Column("client_order_id", String(24), primary_key=True),
    Column("filled_qty", BigInteger, primary_key=True),
    Column("parent_order_id", String(24), nullable=False),
    Column("slice_num", Integer, nullable=False),
    Column("fill_qty", BigInteger, nullable=False),
    Column("fill_price", ExactDecimal, nullable=False),
    Column("filled_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_fills_parent", "parent_order_id", "slice_num"),
)

switches = Table(
    "switches",
    metadata,
    Column("name", String(16), primary_key=True),  # 'kill_switch' | 'breaker'
    Column("engaged", Boolean, nullable=False),
    Column("reason", String(256), nullable=True),
    Column("operator", String(64), nullable=True),
    Column("automatic", Boolean, nullable=False, default=False),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
)

# What a parent's cancel did, kept to answer a repeated cancel alike; `working_orders_canceled`
# stays NULL while the broker cancels asked for are still to do (a restart resumes them).
cancels = Table(
    "cancels",
    metadata,
    Column("parent_order_id", String(24), primary_key=True),
    Column("canceled_slices", Integer, nullable=False),
    Column("in_flight_slices", Integer, nullable=False),
    Column("reason", String(256), nullable=True),
    Column("working_orders", Boolean, nullable=False),
    Column("working_orders_canceled", Integer, nullable=True),
    Column("canceled_at", UTCDateTime, nullable=False),
)

# When the worker first saw a request whose trade date comes from its clock (see
# docs/decisions.md): a redelivery gets the same date, hence the same parent id.
request_receipts = Table(
    "request_receipts",
    metadata,
    Column("message_id", String(255), primary_key=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Index("ix_request_receipts_first_seen", "first_seen_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("exchange", String(8), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("message_id", String(64), nullable=True),
    Column("type", String(64), nullable=True),
    Column("correlation_id", String(255), nullable=True),
    Column("parent_order_id", String(24), nullable=True),
    Column("headers", JSON, nullable=True),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


def status_is(status: str) -> Any:
    """`slices.status = '<status>'` with the value written into the SQL, not bound: only a
    literal lets the planners (PostgreSQL's generic plans, SQLite's) prove a partial index's
    predicate and use it."""
    return slices.c.status == literal_column(f"'{status}'")


# -- risk limits and access (contract v2) ------------------------------------------------------
# One row per strategy, and the default row '*'; `limits` holds only the keys set
# (core.risk.Limits.to_json): an absent key does not apply, or falls back to '*'.
risk_limits = Table(
    "risk_limits",
    metadata,
    Column("strategy_id", String(64), primary_key=True),
    Column("limits", JSON, nullable=False),
    Column("updated_by", String(128), nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Who may do what with TWAP_AUTHZ=on, by AMQP user id.
access_grants = Table(
    "access_grants",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("strategies", JSON, nullable=False),
    Column("actions", JSON, nullable=False),
    Column("operator", Boolean, nullable=False),
    Column("updated_by", String(128), nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Every change of limits or grants: who, when, the value before and after.
risk_audit = Table(
    "risk_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("kind", String(8), nullable=False),  # 'limits' | 'grants'
    Column("subject", String(128), nullable=False),  # the strategy ('*' too) or the user
    Column("old", JSON, nullable=True),
    Column("new", JSON, nullable=True),
    Column("changed_by", String(128), nullable=False),
    Column("reason", String(256), nullable=True),
    Column("changed_at", UTCDateTime, nullable=False),
    Index("ix_risk_audit_subject", "kind", "subject", "changed_at"),
)

# The notional each accepted parent counted against its strategy's day (qty x the reference
# price at intake); absent when no limit needed a price then.
parent_notionals = Table(
    "parent_notionals",
    metadata,
    Column("parent_order_id", String(24), primary_key=True),
    Column("strategy_id", String(64), nullable=False),
    Column("trade_date", String(10), nullable=False),
    Column("notional", ExactDecimal, nullable=False),
    Column("reference_price", ExactDecimal, nullable=False),
    Index("ix_parent_notionals_day", "strategy_id", "trade_date"),
)

# When each slice was let through under max_slices_per_minute (its turn, maybe ahead of now).
slice_turns = Table(
    "slice_turns",
    metadata,
    Column("client_order_id", String(24), primary_key=True),
    Column("strategy_id", String(64), nullable=False),
    Column("turn_at", UTCDateTime, nullable=False),
    Index("ix_slice_turns_strategy", "strategy_id", "turn_at"),
)
