"""GcPauses: every collector pass observed by generation; survivors of a full pass frozen."""

from __future__ import annotations

import gc

from worker.observability.gcpause import GcPauses
from worker.observability.metrics import WorkerMetrics


def _count(metrics: WorkerMetrics, generation: str) -> float:
    value = metrics.registry.get_sample_value(
        "twap_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_full_passes_are_observed_and_their_survivors_frozen() -> None:
    metrics = WorkerMetrics()
    pauses = GcPauses(metrics.gc_pauses)
    gc.unfreeze()
    pauses.install()
    try:
        gc.collect(0)
        assert gc.get_freeze_count() == 0  # a young pass freezes nothing
        gc.collect()
        frozen = gc.get_freeze_count()
    finally:
        pauses.remove()
        gc.unfreeze()  # leave the test process as it was
    assert frozen > 1000  # the modules, the test session: everything that survived
    assert _count(metrics, "0") >= 1
    assert _count(metrics, "2") >= 1
    assert pauses not in gc.callbacks


def test_without_freezing_nothing_is_frozen() -> None:
    metrics = WorkerMetrics()
    pauses = GcPauses(metrics.gc_pauses, freeze_survivors=False)
    pauses.install()
    gc.unfreeze()
    try:
        gc.collect()
        assert gc.get_freeze_count() == 0
    finally:
        pauses.remove()
    assert _count(metrics, "2") >= 1
