"""core.outcomes: what an outcome writes over a slice record, and the breaker's trip policy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from twap_schemas.common import SliceStatus
from worker.core.outcomes import BreakerStep, Outcome, applied, breaker_after
from worker.core.records import SliceRecord

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 15, 0, 5, tzinfo=UTC)
S, F, X = SliceStatus.SUBMITTED, SliceStatus.FAILED, SliceStatus.EXPIRED


def record(**changes: object) -> SliceRecord:
    base = SliceRecord("p1", 0, "c0", 10, T0, status=SliceStatus.SUBMITTING, attempts=1)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_outcome_values_override_the_record() -> None:
    """Broker id, reason and send time given by the outcome replace the record's."""
    old = record(broker_order_id="b-old", reason="old", sent_at=T0)
    new = applied(old, Outcome(S, 2, broker_order_id="b-new", reason="new", sent_at=T1))
    assert (new.status, new.attempts, new.broker_order_id, new.reason, new.sent_at) == (
        S, 2, "b-new", "new", T1)


def test_what_the_outcome_leaves_unset_keeps_the_record_value() -> None:
    """No broker id, reason or send time in the outcome: the record's stay."""
    old = record(broker_order_id="b-old", reason="old", sent_at=T0)
    new = applied(old, Outcome(X, 3))
    assert (new.status, new.attempts, new.broker_order_id, new.reason, new.sent_at) == (
        X, 3, "b-old", "old", T0)


def test_outcome_fills_what_the_record_lacks() -> None:
    """A record without broker id or send time takes the outcome's."""
    new = applied(record(), Outcome(S, 1, broker_order_id="b1", sent_at=T1))
    assert (new.broker_order_id, new.sent_at) == ("b1", T1)


def test_an_empty_reason_is_a_reason() -> None:
    """reason "" is given (only None means unset), so it replaces the record's."""
    assert applied(record(reason="old"), Outcome(X, 1, reason="")).reason == ""


def test_outcome_and_breaker_step_are_frozen_and_slotted() -> None:
    """Values, not mutable objects: no assignment, no instance dict."""
    for value, field in ((Outcome(S, 1), "attempts"), (BreakerStep(0), "consecutive_failures")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, 5)
        assert not hasattr(value, "__dict__")


def test_a_sent_order_resets_the_count() -> None:
    """failed, failed, submitted, failed from 0: one consecutive failure at the end."""
    step = breaker_after([(F, "a"), (F, "b"), (S, None), (F, "c")], 0, False, 5)
    assert step == BreakerStep(1, None)


def test_other_outcomes_leave_the_count() -> None:
    """An expiry neither adds to nor resets the count of 2."""
    assert breaker_after([(X, "late")], 2, False, 5) == BreakerStep(2, None)


def test_trips_when_the_count_reaches_the_maximum_with_the_last_reason() -> None:
    """2 failures before, one more with max 3: trips, naming the count and the last reason."""
    step = breaker_after([(F, "503 from the broker")], 2, False, 3)
    assert step == BreakerStep(3, "3 consecutive slice failures; last: 503 from the broker")


def test_trips_once_and_not_when_already_engaged() -> None:
    """Past the maximum the first reason stays; an engaged breaker is not tripped again."""
    step = breaker_after([(F, "x"), (F, "y")], 2, False, 3)
    assert step == BreakerStep(4, "3 consecutive slice failures; last: x")
    assert breaker_after([(F, "x")], 2, True, 3) == BreakerStep(3, None)


def test_one_below_the_maximum_does_not_trip() -> None:
    """2 of 3 failures: counted, no trip."""
    assert breaker_after([(F, "x")], 1, False, 3) == BreakerStep(2, None)
