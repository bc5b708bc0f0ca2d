"""Freed large buffers go back to the OS: the worker fixes glibc's mmap threshold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import services

REPO = Path(__file__).resolve().parents[2]

# In a fresh interpreter: free a 1 MiB block, then ask for 512 KiB. With glibc's dynamic
# threshold the first free raises it to 1 MiB and the 512 KiB come from the heap; fixed, they
# are mapped on their own (counted in mallinfo2's hblkhd) and unmapped when freed.
PROBE = """
import ctypes, sys
from worker.observability.heap import pin_mmap_threshold
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "pin":
    assert pin_mmap_threshold()
first = bytearray(1 << 20)
del first
mapped_before = libc.mallinfo2().hblkhd
second = bytearray(1 << 19)
print(libc.mallinfo2().hblkhd - mapped_before >= 1 << 19)
"""


def probe(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, check=False
    )
    if "undefined symbol: mallinfo2" in done.stderr:
        # This kind of machine has glibc 2.33+: under CI=true its absence fails, never skips.
        services.unavailable("not glibc 2.33+: mallinfo2 is missing",
                             "the machines this project runs on have glibc 2.33+")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pinned_threshold_keeps_large_buffers_mapped_after_a_larger_free() -> None:
    """With the threshold pinned, a 512 KiB buffer is mapped even after a 1 MiB block was freed."""
    assert probe("pin") == "True"
    assert probe("default") == "False"  # what glibc does on its own, and what the pin prevents


# In a fresh interpreter: 16 MiB of 64 KiB blocks from the heap, one more block after them (so
# they are not its top, which glibc trims on its own), then the 16 MiB freed. Prints how many
# MiB of resident memory a trim (or, for comparison, nothing) gave back.
TRIM_PROBE = """
import os, sys
from worker.observability.heap import pin_mmap_threshold, trim_heap
assert pin_mmap_threshold()
def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
blocks = [bytearray(64 * 1024) for _ in range(256)]
above = bytearray(64 * 1024)
del blocks
before = resident_mib()
released = trim_heap() if sys.argv[1] == "trim" else None
print(released, round(before - resident_mib(), 1))
"""


def trim_probe(mode: str) -> tuple[str, float]:
    done = subprocess.run([sys.executable, "-c", TRIM_PROBE, mode], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    released, mib = done.stdout.split()
    if mode == "trim" and released == "None":
        services.unavailable("not glibc: malloc_trim is missing",
                             "the machines this project runs on have glibc")
    return released, float(mib)


def test_a_trim_gives_back_free_pages_below_the_top_of_the_heap() -> None:
    """16 MiB freed under a block still in use stay resident until the heap is trimmed."""
    released, given_back = trim_probe("trim")
    assert released == "True"
    assert given_back >= 15.0
    released, given_back = trim_probe("none")
    assert released == "None"
    assert given_back < 1.0  # glibc keeps them on its own: what the trim is for
