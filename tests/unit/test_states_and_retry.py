"""The slice state machine and the retry policy of the pure core."""

from __future__ import annotations

import pytest

from twap_schemas.common import SliceStatus as S
from worker.core.retry import (
    BrokerRejection,
    DuplicateOrder,
    TransientBrokerError,
    backoff_seconds,
    is_retryable,
)
from worker.core.states import TERMINAL, IllegalTransition, check_transition, is_terminal


def test_happy_path_transitions_are_allowed() -> None:
    """scheduled → submitting → submitted."""
    check_transition(S.SCHEDULED, S.SUBMITTING)
    check_transition(S.SUBMITTING, S.SUBMITTED)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_statuses_never_change(terminal: S) -> None:
    """A terminal slice can go nowhere (a late writer can't overwrite it)."""
    for target in S:
        with pytest.raises(IllegalTransition):
            check_transition(terminal, target)
    assert is_terminal(terminal)


def test_guards_run_after_the_claim() -> None:
    """A scheduled slice can't be blocked or submitted without being claimed first."""
    for target in (S.SUBMITTED, S.BLOCKED_KILL_SWITCH, S.BLOCKED_CIRCUIT_BREAKER, S.REJECTED):
        with pytest.raises(IllegalTransition):
            check_transition(S.SCHEDULED, target)


def test_only_transient_errors_are_retried() -> None:
    """Rejections and duplicates are final; timeouts and 5xx are retried."""
    assert is_retryable(TransientBrokerError("503"))
    assert is_retryable(TransientBrokerError("timeout", ambiguous=True))
    assert not is_retryable(BrokerRejection("403"))
    assert not is_retryable(DuplicateOrder("dup"))
    assert not is_retryable(ValueError("bug"))


def test_backoff_doubles_from_the_first_wait_and_is_capped() -> None:
    """2 s then 4 s, then 8 s at most."""
    assert [backoff_seconds(n, 2.0) for n in range(1, 6)] == [2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff_seconds(1, 0.01, cap=0.05) == 0.01
