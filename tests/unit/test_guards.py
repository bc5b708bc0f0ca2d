"""The one guard rule: which terminal status stops a claimed slice, in which order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core.guards import Stop, stop_reason
from worker.core.records import SwitchState

GRACE = timedelta(seconds=60)
CLEAR = SwitchState(False, None, False, None)


def test_nothing_stops_an_active_parent_on_time_with_switches_clear() -> None:
    """Active parent, switches released, within the grace: no stop."""
    assert stop_reason(ParentStatus.ACTIVE, CLEAR, late_by=GRACE, grace=GRACE) is None


@pytest.mark.parametrize(
    ("parent", "switches", "late", "status", "reason"),
    [
        (ParentStatus.CANCELED, SwitchState(True, "k", True, "b"), GRACE * 2,
         SliceStatus.CANCELED, "parent canceled"),
        (ParentStatus.ACTIVE, SwitchState(True, "halt", True, "b"), GRACE * 2,
         SliceStatus.BLOCKED_KILL_SWITCH, "halt"),
        (ParentStatus.ACTIVE, SwitchState(True, None, False, None), timedelta(0),
         SliceStatus.BLOCKED_KILL_SWITCH, "kill switch engaged"),
        (ParentStatus.ACTIVE, SwitchState(False, None, True, "trip"), GRACE * 2,
         SliceStatus.BLOCKED_CIRCUIT_BREAKER, "trip"),
        (ParentStatus.ACTIVE, SwitchState(False, None, True, None), timedelta(0),
         SliceStatus.BLOCKED_CIRCUIT_BREAKER, "circuit breaker tripped"),
        (ParentStatus.ACTIVE, CLEAR, GRACE + timedelta(milliseconds=1),
         SliceStatus.EXPIRED, "more than the grace (60 s) late to be sent"),
        (ParentStatus.COMPLETED, CLEAR, GRACE, None, None),
    ],
)
def test_first_guard_that_applies_decides(
    parent: ParentStatus, switches: SwitchState, late: timedelta, status: SliceStatus | None,
    reason: str | None,
) -> None:
    """Cancel, kill switch, breaker, grace: the first that applies wins, with its exact reason."""
    stop = stop_reason(parent, switches, late_by=late, grace=GRACE)
    assert stop == (None if status is None else Stop(status, reason or ""))


def test_unreadable_switches_stop_the_slice() -> None:
    """Fail closed: switch state that could not be read blocks the slice."""
    stop = stop_reason(ParentStatus.ACTIVE, SwitchState.fail_closed("gone"), late_by=GRACE,
                       grace=GRACE)
    assert stop is not None and stop.status is SliceStatus.BLOCKED_KILL_SWITCH
