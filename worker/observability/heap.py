"""glibc's heap, kept from growing over a long run: large buffers mapped on their own, and the
free pages inside the heap given back at quiet moments.

glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB by default):
from then on the database driver's large buffers come from the main heap, whose freed holes
the next, larger buffers do not fit, and RSS climbs for as long as the worker runs (measured
on PostgreSQL: the heap grew 26.9 to 33.5 MiB over 6,000 parents with 21.6 MiB in use). Setting
the threshold explicitly turns that adjustment off.

glibc gives memory back on its own only from the top of a heap; the pages of a free hole below
the top stay resident. After a burst the heap is mostly such holes, and which of them the next
burst reuses varies, so RSS after a burst stepped up by a few hundred KiB now and then, for good.
`malloc_trim(0)` hands every free page of every arena back to the kernel (docs/performance.md,
"Memory over a long run", has the soak with and without it). It walks the free chunks with each
arena locked, so the worker calls it when nothing is in flight (`trim_due`, app.py). Elsewhere
than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

from worker.observability.gcpause import quiet

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


@functools.cache
def _libc(name: str) -> Any:
    """The C library's function `name`, None where it has none (not glibc)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold; False where the C library has no `mallopt`."""
    mallopt = _libc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


def trim_heap() -> bool | None:
    """Give the free pages of glibc's heaps back to the kernel: True when some were, None
    where the C library has no `malloc_trim`."""
    malloc_trim = _libc("malloc_trim")
    if malloc_trim is None:
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    return bool(malloc_trim(0))


def can_trim() -> bool:
    return _libc("malloc_trim") is not None


def trim_due(work_since_last: bool, busy: int, next_due_in: Callable[[], float | None]) -> bool:
    """Whether to trim now: once after each stretch of work (`work_since_last`: a trim while
    idle finds nothing new to give back), at a quiet moment (nothing `busy`, and no slice due
    within `QUIET_AHEAD_SECONDS`: a trim stops the loop, so never just before a slice).
    `next_due_in` scans the schedule, so it is only asked when the rest allows a trim."""
    return work_since_last and busy == 0 and quiet(0, next_due_in())
