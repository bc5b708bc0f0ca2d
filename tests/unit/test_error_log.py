"""The rate-limited error log: one traceback per kind, then a count per second, all counted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from worker.observability.metrics import WorkerMetrics
from worker.runtime.errorlog import ErrorLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(message: str = "QueuePool limit of size 2 overflow 0 reached") -> TimeoutError:
    try:
        raise TimeoutError(message)
    except TimeoutError as exc:
        return exc


def counted(metrics: WorkerMetrics, event: str, error: str) -> float:
    value = metrics.registry.get_sample_value(
        "twap_errors_total", {"event": event, "error": error})
    return value or 0.0


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("tests.errorlog")


async def test_a_storm_logs_one_traceback_then_one_count_per_second(
    caplog: pytest.LogCaptureFixture, logger: logging.Logger
) -> None:
    """1,000 identical errors within a second: one traceback, then one line saying 999."""
    metrics, clock = WorkerMetrics(), Clock()
    errors = ErrorLog(logger, metrics, clock=clock)
    with caplog.at_level(logging.ERROR, logger.name):
        for i in range(1000):
            errors.error("slice.claim_error", fail(), {"slice_num": i})
        clock.now += 1.0
        errors.error("slice.claim_error", fail("the last one"), {"slice_num": 1000})
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and tracebacks[0].getMessage() == "slice.claim_error"
    (summary,) = [r for r in caplog.records if not r.exc_info]
    assert summary.getMessage() == "slice.claim_error.repeated"
    assert (summary.count, summary.error, summary.error_class) == (  # type: ignore[attr-defined]
        1000, "the last one", "TimeoutError")
    assert counted(metrics, "slice.claim_error", "TimeoutError") == 1001


async def test_the_count_is_logged_when_the_storm_stops(
    caplog: pytest.LogCaptureFixture, logger: logging.Logger
) -> None:
    """Repeats followed by silence still get their count line, from a timer of the loop."""
    errors = ErrorLog(logger, WorkerMetrics(), window=0.01)
    with caplog.at_level(logging.ERROR, logger.name):
        for _ in range(5):
            errors.error("slice.record_failed", fail(), {})
        await asyncio.sleep(0.05)
    messages = [(r.getMessage(), getattr(r, "count", None)) for r in caplog.records]
    assert messages == [("slice.record_failed", None), ("slice.record_failed.repeated", 4)]


async def test_kinds_are_counted_apart_and_a_quiet_kind_starts_afresh(
    caplog: pytest.LogCaptureFixture, logger: logging.Logger
) -> None:
    """Another event or exception class gets its own traceback; after a quiet window, again."""
    metrics = WorkerMetrics()
    errors = ErrorLog(logger, metrics, window=0.01)
    with caplog.at_level(logging.ERROR, logger.name):
        errors.error("slice.claim_error", fail(), {})
        errors.error("slice.claim_error", ValueError("bad row"), {})
        errors.error("slice.record_failed", fail(), {})
        await asyncio.sleep(0.05)  # a whole quiet window: forgotten
        errors.error("slice.claim_error", fail(), {})
    assert sum(1 for r in caplog.records if r.exc_info) == 4
    assert counted(metrics, "slice.claim_error", "ValueError") == 1
    assert counted(metrics, "slice.claim_error", "TimeoutError") == 2


async def test_close_logs_what_is_still_counted(
    caplog: pytest.LogCaptureFixture, logger: logging.Logger
) -> None:
    """At shutdown the repeats not yet reported are logged, not dropped."""
    errors = ErrorLog(logger, WorkerMetrics(), window=60.0)
    with caplog.at_level(logging.ERROR, logger.name):
        for _ in range(3):
            errors.error("slice.resume_error", fail(), {})
        errors.close()
    assert [getattr(r, "count", None) for r in caplog.records] == [None, 2]
