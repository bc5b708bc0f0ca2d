"""Events published to the `N.events` topic exchange, one model per `event_type`.

Routing key: `{event_type}.{strategy_id}` for parent, slice and request events; control events
use `control.{what}`. Delivery is at least once: subscribers de-duplicate on `event_id`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from twap_schemas.common import ExecutionOutcome, Side, SliceStatus
from twap_schemas.errors import ErrorDetail


class Event(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[2] = 2
    event_id: str = Field(description="UUID; also the AMQP message_id. De-duplicate on it.")
    event_type: str
    occurred_at: datetime = Field(description="RFC 3339, UTC")


class ParentEvent(Event):
    parent_order_id: str
    strategy_id: str
    symbol: str
    side: Side


class PlannedSlice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slice_num: int
    client_order_id: str
    qty: int
    scheduled_time: datetime


class ParentAccepted(ParentEvent):
    event_type: Literal["parent.accepted"] = "parent.accepted"
    total_qty: int
    total_slices: int
    interval_seconds: int
    order_type: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str
    start_at: datetime
    trade_date: str
    slices: list[PlannedSlice]


class ParentCanceled(ParentEvent):
    event_type: Literal["parent.canceled"] = "parent.canceled"
    canceled_slices: int
    in_flight_slices: int
    reason: str | None = None
    working_orders_canceled: int = Field(
        default=0, description="orders canceled at the broker (cancel_working_orders)"
    )
    filled_qty: int = Field(default=0, description="shares filled so far")


class StatusTally(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int
    qty: int


class ParentCompleted(ParentEvent):
    event_type: Literal["parent.completed"] = "parent.completed"
    total_qty: int
    total_slices: int
    submitted_qty: int
    by_status: dict[SliceStatus, StatusTally]
    filled_qty: int = 0
    unfilled_qty: int = 0
    avg_fill_price: Decimal | None = None
    notional: Decimal = Field(default=Decimal(0), description="sum of fill qty x fill price")
    outcome: ExecutionOutcome = ExecutionOutcome.UNFILLED


class SliceEvent(ParentEvent):
    slice_num: int
    client_order_id: str
    qty: int
    scheduled_time: datetime
    status: SliceStatus
    broker_order_id: str | None = None
    filled_qty: int = Field(default=0, description="shares filled so far (never decreases)")
    avg_fill_price: Decimal | None = None


class SliceSubmitted(SliceEvent):
    event_type: Literal["slice.submitted"] = "slice.submitted"
    attempts: int
    sent_at: datetime | None = None
    lateness_ms: float | None = Field(default=None, description="sent_at minus scheduled_time")


class SliceBlockedKillSwitch(SliceEvent):
    event_type: Literal["slice.blocked_kill_switch"] = "slice.blocked_kill_switch"
    reason: str | None = None


class SliceBlockedCircuitBreaker(SliceEvent):
    event_type: Literal["slice.blocked_circuit_breaker"] = "slice.blocked_circuit_breaker"
    reason: str | None = None


class SliceCanceled(SliceEvent):
    event_type: Literal["slice.canceled"] = "slice.canceled"
    reason: str | None = None


class SliceRejected(SliceEvent):
    event_type: Literal["slice.rejected"] = "slice.rejected"
    reason: str
    attempts: int


class SliceFailed(SliceEvent):
    event_type: Literal["slice.failed"] = "slice.failed"
    reason: str
    attempts: int


class SliceExpired(SliceEvent):
    event_type: Literal["slice.expired"] = "slice.expired"
    reason: str
    attempts: int


class SliceFill(SliceEvent):
    event_type: Literal["slice.fill"] = "slice.fill"
    fill_qty: int
    fill_price: Decimal
    parent_filled_qty: int
    parent_avg_fill_price: Decimal | None = None
    filled_at: datetime


class SliceFilled(SliceEvent):
    event_type: Literal["slice.filled"] = "slice.filled"


class SliceClosed(SliceEvent):
    event_type: Literal["slice.closed"] = "slice.closed"
    unfilled_qty: int
    reason: str | None = None
class SliceBlockedRisk(SliceEvent):
    event_type: Literal["slice.blocked_risk"] = "slice.blocked_risk"
    reason: str


class RequestRejected(Event):
    event_type: Literal["request.rejected"] = "request.rejected"
    errors: list[ErrorDetail]
    message_id: str | None = None
    correlation_id: str | None = None
    strategy_id: str | None = None
    parent_order_id: str | None = None


class RequestDuplicate(Event):
    event_type: Literal["request.duplicate"] = "request.duplicate"
    parent_order_id: str
    strategy_id: str
    message_id: str | None = None
    correlation_id: str | None = None


class ControlEvent(Event):
    reason: str | None = None
    operator: str | None = None
    automatic: bool = False


class KillSwitchEngaged(ControlEvent):
    event_type: Literal["control.kill_switch.engaged"] = "control.kill_switch.engaged"


class KillSwitchReleased(ControlEvent):
    event_type: Literal["control.kill_switch.released"] = "control.kill_switch.released"


class BreakerTripped(ControlEvent):
    event_type: Literal["control.breaker.tripped"] = "control.breaker.tripped"


class BreakerReset(ControlEvent):
    event_type: Literal["control.breaker.reset"] = "control.breaker.reset"


class LimitsChanged(Event):
    """A `limits.set` applied: the row of `strategy_id` ('*': the default row) before and
    after (only the keys set)."""

    event_type: Literal["control.limits.changed"] = "control.limits.changed"
    strategy_id: str
    old: dict[str, Any] | None
    new: dict[str, Any]
    operator: str
    reason: str | None = None


class GrantsChanged(Event):
    """A `grants.set` applied: the user's grant before and after."""

    event_type: Literal["control.grants.changed"] = "control.grants.changed"
    user: str
    old: dict[str, Any] | None
    new: dict[str, Any]
    operator: str
    reason: str | None = None


SLICE_EVENTS: dict[SliceStatus, type[SliceEvent]] = {
    SliceStatus.SUBMITTED: SliceSubmitted,
    SliceStatus.BLOCKED_KILL_SWITCH: SliceBlockedKillSwitch,
    SliceStatus.BLOCKED_CIRCUIT_BREAKER: SliceBlockedCircuitBreaker,
    SliceStatus.CANCELED: SliceCanceled,
    SliceStatus.REJECTED: SliceRejected,
    SliceStatus.FAILED: SliceFailed,
    SliceStatus.EXPIRED: SliceExpired,
    SliceStatus.FILLED: SliceFilled,
    SliceStatus.CLOSED: SliceClosed,
    SliceStatus.BLOCKED_RISK: SliceBlockedRisk,
}

AnyEvent = Annotated[
    ParentAccepted
    | ParentCanceled
    | ParentCompleted
    | SliceSubmitted
    | SliceBlockedKillSwitch
    | SliceBlockedCircuitBreaker
    | SliceCanceled
    | SliceRejected
    | SliceFailed
    | SliceExpired
    | SliceFill
    | SliceFilled
    | SliceClosed
    | SliceBlockedRisk
    | RequestRejected
    | RequestDuplicate
    | KillSwitchEngaged
    | KillSwitchReleased
    | BreakerTripped
    | BreakerReset
    | LimitsChanged
    | GrantsChanged,
    Field(discriminator="event_type"),
]


def routing_key(event_type: str, strategy_id: str | None) -> str:
    """Topic routing key of an event: control events by what they are, others by strategy."""
    if event_type.startswith("control."):
        return event_type
    return f"{event_type}.{strategy_id or '_unknown'}"
