"""Plain records the core, the store and the runtime pass around."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from twap_schemas.common import (
    Distribution,
    ExecutionOutcome,
    OrderType,
    ParentStatus,
    Side,
    SliceEnd,
    SliceStatus,
    TimeInForce,
)


@dataclass(frozen=True, slots=True)
class ParentRecord:
    parent_order_id: str
    strategy_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce
    duration_seconds: int
    interval_seconds: int
    max_slice_qty: int | None
    distribution: Distribution
    start_at: datetime
    trade_date: date
    request_id: str | None
    submitted_by: str | None
    total_slices: int
    status: ParentStatus = ParentStatus.ACTIVE
    created_at: datetime | None = None
    # Execution (contract v2): how slices end and catch up, and what has executed so far.
    slice_end: SliceEnd = SliceEnd.CANCEL
    catch_up: bool = True
    max_catch_up_ratio: Decimal = Decimal(2)
    keep_working_after_end: bool = False
    filled_qty: int = 0
    notional: Decimal = Decimal(0)  # sum of fill qty x fill price, exact
    working_qty: int = 0  # qty at the broker not yet filled
    outcome: ExecutionOutcome | None = None  # set when it completes


@dataclass(frozen=True, slots=True)
class SliceRecord:
    parent_order_id: str
    slice_num: int
    client_order_id: str
    qty: int
    scheduled_time: datetime
    status: SliceStatus = SliceStatus.SCHEDULED
    broker_order_id: str | None = None
    attempts: int = 0
    reason: str | None = None
    sent_at: datetime | None = None
    filled_qty: int = 0
    fill_notional: Decimal = Decimal(0)  # sum of fill qty x fill price; avg is derived
    planned_qty: int | None = None  # the plan's qty, when catch-up set `qty` otherwise at claim


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to publish after the transaction that wrote it commits.

    `exchange` is logical: "events", "dlx" or "" (the default exchange, for replies).
    """

    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None = None
    type: str | None = None
    correlation_id: str | None = None
    parent_order_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SwitchState:
    """Kill switch and breaker as read from the database; unreadable state is engaged."""

    kill_switch_engaged: bool
    kill_switch_reason: str | None
    breaker_tripped: bool
    breaker_reason: str | None
    consecutive_failures: int = 0

    @classmethod
    def fail_closed(cls, why: str) -> SwitchState:
        return cls(True, why, True, why)
