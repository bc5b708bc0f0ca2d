"""Whether a claimed slice may go to the broker now: one rule, applied at the claim and again
right before every send (after any wait in the broker's rate limiter, a backoff, a restart)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core.records import SwitchState


@dataclass(frozen=True, slots=True)
class GuardState:
    """What the guards read, in one statement: the parent, the slice itself, the switches."""

    parent_status: ParentStatus
    slice_status: SliceStatus
    switches: SwitchState


@dataclass(frozen=True, slots=True)
class Stop:
    """The terminal status a guard gives a claimed slice instead of sending it, and why."""

    status: SliceStatus
    reason: str


def stop_reason(
    parent_status: ParentStatus, switches: SwitchState, *, late_by: timedelta, grace: timedelta
) -> Stop | None:
    """Why the slice must not be sent now, or None. Checked in this order."""
    if parent_status is ParentStatus.CANCELED:
        return Stop(SliceStatus.CANCELED, "parent canceled")
    # A paused parent (contract v2) is checked here, once that status exists: its slice is
    # held, neither sent nor expired.
    if switches.kill_switch_engaged:
        return Stop(SliceStatus.BLOCKED_KILL_SWITCH,
                    switches.kill_switch_reason or "kill switch engaged")
    if switches.breaker_tripped:
        return Stop(SliceStatus.BLOCKED_CIRCUIT_BREAKER,
                    switches.breaker_reason or "circuit breaker tripped")
    if late_by > grace:
        return Stop(SliceStatus.EXPIRED,
                    f"more than the grace ({grace.total_seconds():.0f} s) late to be sent")
    return None
