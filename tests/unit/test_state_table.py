"""The slice state machine against its table, written out here rather than read from the code."""

from __future__ import annotations

import itertools

import pytest

from twap_schemas.common import SliceStatus
from worker.core.states import (
    OPEN,
    PENDING,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    check_transition,
    is_terminal,
)

STATUSES = [
    "scheduled", "submitting", "submitted", "blocked_kill_switch", "blocked_circuit_breaker",
    "canceled", "rejected", "failed", "expired", "filled", "closed", "blocked_risk",
]
ALLOWED = {
    ("scheduled", "submitting"),
    ("scheduled", "canceled"),
    ("scheduled", "expired"),
    ("scheduled", "failed"),
    ("submitting", "submitted"),
    ("submitting", "blocked_kill_switch"),
    ("submitting", "blocked_circuit_breaker"),
    ("submitting", "canceled"),
    ("submitting", "rejected"),
    ("submitting", "failed"),
    ("submitting", "expired"),
    ("submitting", "closed"),  # catch-up left nothing to send
    ("submitting", "blocked_risk"),
    ("submitted", "filled"),
    ("submitted", "closed"),
}
FINAL = {
    "filled", "closed", "blocked_kill_switch", "blocked_circuit_breaker", "canceled", "rejected",
    "failed", "expired", "blocked_risk",
}
ALL_PAIRS = list(itertools.product(STATUSES, STATUSES))


def test_the_status_list_is_the_contracts() -> None:
    """The enum has exactly the twelve statuses this table covers."""
    assert sorted(s.value for s in SliceStatus) == sorted(STATUSES)


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED))
def test_allowed_transition_passes(current: str, new: str) -> None:
    """Each of the fourteen allowed moves is accepted."""
    check_transition(SliceStatus(current), SliceStatus(new))


@pytest.mark.parametrize(("current", "new"), [p for p in ALL_PAIRS if p not in ALLOWED])
def test_any_other_transition_is_illegal(current: str, new: str) -> None:
    """Every move not in the table raises, naming both statuses."""
    with pytest.raises(IllegalTransition) as err:
        check_transition(SliceStatus(current), SliceStatus(new))
    assert str(err.value) == f"slice cannot go from {current} to {new}"


def test_transition_table_has_a_row_for_every_status() -> None:
    """TRANSITIONS maps every status (terminal ones to nothing) and allows exactly the table."""
    assert {s.value for s in TRANSITIONS} == set(STATUSES)
    pairs = {(c.value, n.value) for c, targets in TRANSITIONS.items() for n in targets}
    assert pairs == ALLOWED


@pytest.mark.parametrize("status", STATUSES)
def test_terminal_statuses_are_exactly_the_final_ones(status: str) -> None:
    """is_terminal is true for the eight final statuses; false for scheduled, submitting and
    submitted (working at the broker until its order ends)."""
    assert is_terminal(SliceStatus(status)) is (status in FINAL)


def test_terminal_and_pending_sets_are_written_out() -> None:
    """TERMINAL holds the eight final statuses, PENDING the two not yet at the broker, OPEN
    those and `submitted`."""
    assert {s.value for s in TERMINAL} == FINAL
    assert {s.value for s in PENDING} == {"scheduled", "submitting"}
    assert {s.value for s in OPEN} == {"scheduled", "submitting", "submitted"}
