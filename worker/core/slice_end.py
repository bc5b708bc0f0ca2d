"""When a slice's order stops working: the slice's end and the parent's end (pure).

- `slice_end: cancel`: slice i's order is canceled when slice i + 1 comes due; the last
  slice's at the parent's end (start + duration).
- `keep_working_after_end: false`: every order still working at the parent's end is canceled.
- `slice_end: keep` with `keep_working_after_end: true`: orders work until the broker ends them.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from twap_schemas.common import Distribution, SliceEnd
from worker.core.records import ParentRecord
from worker.core.slicing import due_time, split_quantity


def parent_end(parent: ParentRecord) -> datetime:
    return parent.start_at + timedelta(seconds=parent.duration_seconds)


def order_deadline(parent: ParentRecord, slice_num: int) -> datetime | None:
    """When the order of slice `slice_num` is to be canceled if still working; None: never."""
    end = parent_end(parent)
    deadlines = []
    if parent.slice_end is SliceEnd.CANCEL:
        last = slice_num >= parent.total_slices - 1
        deadlines.append(end if last else min(end, due_time(parent.start_at,
                                                            parent.interval_seconds,
                                                            slice_num + 1)))
    if not parent.keep_working_after_end:
        deadlines.append(end)
    return min(deadlines) if deadlines else None


def planned_quantities(parent: ParentRecord) -> tuple[int, ...]:
    """The plan's qty of every slice (what `parent.accepted` announced), recomputed."""
    return _split(parent.qty, parent.total_slices,
                  parent.distribution is Distribution.EVEN_RANDOM, parent.parent_order_id)


@functools.lru_cache(maxsize=256)
def _split(qty: int, n: int, even_random: bool, seed: str) -> tuple[int, ...]:
    # Cached: every slice of a parent asks for the same plan (a seeded sample for even_random).
    return split_quantity(qty, n, even_random=even_random, seed=seed)
