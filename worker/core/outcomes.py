"""A claimed slice's outcome as one value, and the decisions that follow from it (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from twap_schemas.common import SliceStatus
from worker.core.records import SliceRecord


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a claimed slice ended (or, `submitting` slices aside, what to write about it)."""

    status: SliceStatus
    attempts: int
    broker_order_id: str | None = None
    reason: str | None = None
    sent_at: datetime | None = None


def applied(record: SliceRecord, outcome: Outcome) -> SliceRecord:
    """The slice as it will be once `outcome` is written: what the outcome leaves unset
    keeps the record's value."""
    return replace(
        record,
        status=outcome.status,
        broker_order_id=outcome.broker_order_id or record.broker_order_id,
        attempts=outcome.attempts,
        reason=outcome.reason if outcome.reason is not None else record.reason,
        sent_at=outcome.sent_at or record.sent_at,
    )


@dataclass(frozen=True, slots=True)
class BreakerStep:
    """What a run of outcomes does to the breaker: its new failure count, and the reason to
    trip it (None: leave it as it is)."""

    consecutive_failures: int
    trip_reason: str | None = None


def breaker_after(
    outcomes: Sequence[tuple[SliceStatus, str | None]], failures: int, engaged: bool,
    max_failures: int,
) -> BreakerStep:
    """The breaker after `outcomes` (in the order they were recorded), from `failures`
    consecutive failures before them: a sent order resets the count, a failure adds one,
    anything else leaves it. It trips, once, when the count reaches `max_failures`."""
    trip: str | None = None
    for status, reason in outcomes:
        if status is SliceStatus.SUBMITTED:
            failures = 0
        elif status is SliceStatus.FAILED:
            failures += 1
            if not engaged and trip is None and failures >= max_failures:
                trip = f"{failures} consecutive slice failures; last: {reason}"
    return BreakerStep(failures, trip)
