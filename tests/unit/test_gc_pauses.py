"""GcPauses: every collector pass observed by generation; survivors of a full pass frozen."""

from __future__ import annotations

import gc
import weakref

from worker.observability.gcpause import GcPauses, quiet, reclaim, reclaim_due
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


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_reclaim_frees_a_cycle_that_became_garbage_after_a_freeze() -> None:
    """A cycle alive at a freeze and dropped later stays for good under the freeze (a full
    pass does not see it); `reclaim` frees it and freezes what survives again."""
    gc.unfreeze()
    node = _Node()
    alive = weakref.ref(node)
    gc.freeze()
    try:
        del node
        gc.collect()
        assert alive() is not None  # frozen: the full pass did not free it
        assert reclaim() >= 1
        assert alive() is None
        assert gc.get_freeze_count() > 1000  # the survivors are frozen again
    finally:
        gc.unfreeze()  # leave the test process as it was


def test_reclaim_waits_for_its_period_and_a_quiet_moment() -> None:
    hour = 3600.0
    assert reclaim_due(3599.0, hour, in_flight=0, next_due_in=None) is False
    assert reclaim_due(3600.0, hour, in_flight=0, next_due_in=None) is True
    assert reclaim_due(3600.0, hour, in_flight=0, next_due_in=0.6) is True
    assert reclaim_due(3600.0, hour, in_flight=0, next_due_in=0.5) is False  # a slice is close
    assert reclaim_due(3600.0, hour, in_flight=1, next_due_in=None) is False  # one in flight
    assert reclaim_due(7199.0, hour, in_flight=3, next_due_in=0.0) is False
    assert reclaim_due(7200.0, hour, in_flight=3, next_due_in=0.0) is True  # never quiet
    assert reclaim_due(1e9, 0.0, in_flight=0, next_due_in=None) is False  # 0: never


def test_a_quiet_moment_has_nothing_in_flight_and_nothing_due_within_half_a_second() -> None:
    assert quiet(0, None) is True  # nothing armed
    assert quiet(0, 0.51) is True
    assert quiet(0, 0.5) is False
    assert quiet(0, -2.0) is False  # one overdue
    assert quiet(1, None) is False
    assert quiet(1, 30.0) is False
