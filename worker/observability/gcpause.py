"""The garbage collector's pauses: kept short, and measured.

A full collection walks every container object the process holds and stops the event loop
meanwhile: with a large heap, tens of milliseconds every few seconds, which is what made slices
late in the dispatch benchmark. What survives a full collection is long-lived (modules,
settings, the schedule, the broker's book): moved to the permanent generation (`gc.freeze`),
it is not walked again, so each full pass only sees what came since. The cost: a frozen object
that later ends up in a reference cycle is not reclaimed (objects freed by reference counting,
nearly all of them, are) until `reclaim`, which the worker runs at a quiet moment every
`TWAP_GC_RECLAIM_SECONDS`. Every pause is observed in a histogram by generation, and one long
enough to make slices late is logged.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

from prometheus_client import Histogram

log = logging.getLogger(__name__)

LONG_PAUSE_SECONDS = 0.02


# A quiet moment: nothing between claim and outcome, and no slice due this soon.
QUIET_AHEAD_SECONDS = 0.5


def quiet(in_flight: int, next_due_in: float | None) -> bool:
    """A moment to stop the event loop for a few milliseconds: no slice between its claim and
    its outcome, and none due within `QUIET_AHEAD_SECONDS` (None: none armed)."""
    return in_flight == 0 and (next_due_in is None or next_due_in > QUIET_AHEAD_SECONDS)


def reclaim_due(since_last: float, period: float, in_flight: int,
                next_due_in: float | None) -> bool:
    """Whether to reclaim what the freeze kept (`reclaim`) now. `period` seconds after the
    last reclaim, at a quiet moment; at twice the period whatever the moment, so that a worker
    that is never quiet still gives back what became garbage. 0: never."""
    if period <= 0 or since_last < period:
        return False
    return quiet(in_flight, next_due_in) or since_last >= 2 * period


def reclaim() -> int:
    """One full collection over everything, frozen objects included, then freeze the
    survivors again: the reference cycles that were alive when a freeze happened and became
    garbage since are freed. Returns how many objects the collection found unreachable. One
    pause as long as the full passes the freeze avoids (tens of milliseconds on a large heap),
    so the caller picks a quiet moment."""
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found


class GcPauses:
    def __init__(self, histogram: Histogram, *, freeze_survivors: bool = True) -> None:
        self.histogram = histogram
        self.freeze_survivors = freeze_survivors
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info.get("generation", 2)
        self.histogram.labels(str(generation)).observe(pause)
        if generation == 2 and self.freeze_survivors:
            gc.freeze()
        if pause >= LONG_PAUSE_SECONDS:
            log.info("gc.pause", extra={"generation": generation,
                                        "pause_ms": round(pause * 1000, 1),
                                        "collected": info.get("collected")})

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
