"""What the runtime's calls do to the metrics, and how broker calls are labelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twap_schemas.common import Side, SliceStatus
from worker.brokers.base import OrderRequest
from worker.brokers.sim import SimBroker
from worker.observability.broker import TimedBroker
from worker.observability.metrics import WorkerMetrics


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_registries_are_per_worker() -> None:
    """Two WorkerMetrics in one process count separately (no global registry)."""
    a, b = WorkerMetrics(), WorkerMetrics()
    a.request("accepted")
    assert sample(a, "twap_requests_total", outcome="accepted") == 1
    assert sample(b, "twap_requests_total", outcome="accepted") == 0


def test_slice_recorded_counts_status_retries_and_lateness() -> None:
    """A submitted slice on its 3rd attempt, 40 ms late: status, 2 retries, one 0.05 s bucket."""
    m = WorkerMetrics()
    due = datetime(2030, 1, 1, tzinfo=UTC)
    m.slice_recorded(SliceStatus.SUBMITTED, 3, due, due + timedelta(milliseconds=40))
    m.slice_recorded(SliceStatus.FAILED, 1, due, None)
    assert sample(m, "twap_slices_total", status="submitted") == 1
    assert sample(m, "twap_slices_total", status="failed") == 1
    assert sample(m, "twap_slice_retries_total") == 2
    assert sample(m, "twap_slice_lateness_seconds_count") == 1
    assert sample(m, "twap_slice_lateness_seconds_bucket", le="0.025") == 0
    assert sample(m, "twap_slice_lateness_seconds_bucket", le="0.05") == 1


@pytest.mark.parametrize(
    ("fault", "result"), [(None, "ok"), ("transient", "transient"), ("reject", "rejected")]
)
async def test_broker_calls_are_timed_by_operation_and_result(
    fault: str | None, result: str
) -> None:
    """Each submit lands in twap_broker_call_seconds with its outcome as the result label."""
    m, sim = WorkerMetrics(), SimBroker()
    if fault:
        sim.fail_next(fault)
    broker = TimedBroker(sim, m)
    order = OrderRequest(client_order_id="c1", symbol="AAPL", side=Side.BUY, qty=1)
    try:
        await broker.submit(order)
    except Exception:
        assert fault is not None
    assert sample(m, "twap_broker_call_seconds_count", operation="submit", result=result) == 1
    assert broker.name == sim.name
