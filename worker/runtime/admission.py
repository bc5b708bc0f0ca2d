"""The admission gate: at most `limit` slices between their claim and their outcome.

Without it every slice that falls due starts its claim at once; past what the connection pool
and the broker can serve, the claims queue for a connection until the pool times out, and each
failure costs a traceback. Slices beyond the limit wait here instead, in order of due time (a
heap, not a FIFO of tasks: a slice that was due first goes first, whatever order the tasks
woke up in), and a slot is handed straight to the next waiter when one is released.

A slice the scheduler fires waits as an entry (`enqueue`): a starter called when a slot is
its, which starts the slice's task then. Under overload thousands of slices wait at once (a
soak round had 6,000), and a task per waiting slice, with its coroutine frames, cost about
4 KiB each: a peak the allocator kept as resident memory for good. A starter may decline the
slot (its slice's grace has passed, or the worker is stopping): the slot goes on to the next.
Other callers wait in a task (`acquire`, `slot`); a task whose deadline passes leaves without
a slot. Either way a slice that never got a slot was never claimed: it stays `scheduled` for
the store's batch expiry to end it, with its event.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

log = logging.getLogger(__name__)

# Called when a slot is its, told whether it waited for it; True: it took the slot (and gives
# it back with `release()`).
Starter = Callable[[bool], bool]


class AdmissionGate:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight limit must be at least 1, got {limit}")
        self.limit = limit
        self._in_use = 0
        self._waiting = 0  # live waiters; the heap also holds withdrawn ones until popped
        self._heap: list[tuple[datetime, int, asyncio.Future[bool] | Starter]] = []
        self._order = itertools.count()  # ties on the due time go in arrival order

    @property
    def in_use(self) -> int:
        """Slots held: slices between their claim and their outcome."""
        return self._in_use

    @property
    def free(self) -> bool:
        """A slot would be taken at once: one is free and nobody waits."""
        return self._in_use < self.limit and self._waiting == 0

    @property
    def waiting(self) -> int:
        """Slices waiting for a slot."""
        return self._waiting

    def enqueue(self, due: datetime, start: Starter) -> None:
        """Call `start` with a slot: now if one is free and nobody waits, else when a release
        hands it one, after every waiter due earlier."""
        if self.free:
            self._in_use += 1
            if not _started(start, waited=False):
                self.release()
            return
        heapq.heappush(self._heap, (due, next(self._order), start))
        self._waiting += 1

    async def acquire(self, due: datetime, within: float | None = None) -> bool:
        """Take a slot, waiting behind slices due earlier; False when `within` seconds
        passed first. A slot taken must be given back with `release()`."""
        if self.free:
            self._in_use += 1
            return True
        if within is not None and within <= 0:
            return False
        granted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (due, next(self._order), granted))
        self._waiting += 1
        try:
            async with asyncio.timeout(within):
                return await granted
        except BaseException as exc:
            if granted.done() and not granted.cancelled():
                # The slot was handed over in the same moment: pass it on, unused.
                self.release()
            else:
                granted.cancel()  # withdrawn: release() skips it
                self._waiting -= 1
            if isinstance(exc, TimeoutError):
                return False
            raise

    def release(self) -> None:
        """Give a slot back: to the waiter due first, else to the pool of free slots."""
        while self._heap:
            _, _, waiter = heapq.heappop(self._heap)
            if not isinstance(waiter, asyncio.Future):
                self._waiting -= 1
                if _started(waiter, waited=True):
                    return  # the slot moves to it: in_use stays the same
                continue  # declined: on to the next
            if waiter.done():  # withdrawn (timed out or canceled)
                continue
            self._waiting -= 1
            waiter.set_result(True)  # the slot moves to it: in_use stays the same
            return
        if self._in_use <= 0:
            raise RuntimeError("release() without a slot")
        self._in_use -= 1

    @asynccontextmanager
    async def slot(self, due: datetime, within: float | None = None) -> AsyncIterator[bool]:
        """`async with gate.slot(due, within) as admitted:` the slot is released on every
        way out of the block; `admitted` False: none was taken (`within` passed first)."""
        admitted = await self.acquire(due, within)
        try:
            yield admitted
        finally:
            if admitted:
                self.release()


def _started(start: Starter, *, waited: bool) -> bool:
    """Whether `start` took the slot; a starter that raises took none (and the slot must not
    be lost with it)."""
    try:
        return start(waited)
    except Exception:
        log.exception("gate.starter_failed")
        return False
