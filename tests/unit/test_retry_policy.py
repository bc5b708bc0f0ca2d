"""Retry policy edges: no wait before the first attempt, the error's message and ambiguity."""

from __future__ import annotations

import pytest

from worker.core.retry import TransientBrokerError, backoff_seconds


@pytest.mark.parametrize("attempt", [-1, 0])
def test_no_wait_before_the_first_attempt(attempt: int) -> None:
    """Attempt 0 (and anything below) waits exactly 0.0 s, whatever the first wait."""
    assert backoff_seconds(attempt, 2.0) == 0.0
    assert backoff_seconds(attempt, 5.0, cap=10.0) == 0.0


def test_first_retry_waits_the_first_wait() -> None:
    """Attempt 1 waits first_wait, attempt 2 twice that, under a cap of 8 s by default."""
    assert backoff_seconds(1, 3.0) == 3.0
    assert backoff_seconds(2, 3.0) == 6.0
    assert backoff_seconds(3, 3.0) == 8.0


def test_transient_error_keeps_its_message_and_is_not_ambiguous_by_default() -> None:
    """str() is the message; ambiguous is false unless the adapter says the order may be sent."""
    err = TransientBrokerError("503 from broker")
    assert str(err) == "503 from broker"
    assert err.ambiguous is False
    assert TransientBrokerError("timeout", ambiguous=True).ambiguous is True
