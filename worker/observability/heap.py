"""Large C buffers are mapped and unmapped on their own, so freeing one gives its memory back.

glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB by default):
from then on the database driver's large buffers come from the main heap, whose freed holes
the next, larger buffers do not fit, and RSS climbs for as long as the worker runs (measured
on PostgreSQL: the heap grew 26.9 to 33.5 MiB over 6,000 parents with 21.6 MiB in use). Setting
the threshold explicitly turns that adjustment off. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold; False where the C library has no `mallopt`."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
