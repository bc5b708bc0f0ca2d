"""Which database errors count as an outage (retried later) rather than a bug."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from worker.store.engine import is_outage


def test_pool_checkout_timeout_is_an_outage() -> None:
    """No free connection in time: nothing ran, so the write is retried, not given up."""
    assert is_outage(PoolTimeout("QueuePool limit of size 2 overflow 0 reached"))


def test_constraint_violation_is_not_an_outage() -> None:
    """An integrity error is a bug or a race to report, never retried as an outage."""
    assert not is_outage(IntegrityError("INSERT ...", {}, Exception("duplicate key")))
