"""The admission gate: at most `limit` slices between their claim and their outcome.

Without it every slice that falls due starts its claim at once; past what the connection pool
and the broker can serve, the claims queue for a connection until the pool times out, and each
failure costs a traceback. Slices beyond the limit wait here instead, in order of due time (a
heap, not a FIFO of tasks: a slice that was due first goes first, whatever order the tasks
woke up in), and a slot is handed straight to the next waiter when one is released. A waiter
whose deadline (its due time plus the grace) passes leaves without a slot: it was never
claimed, so it stays `scheduled` for the store's batch expiry to end it, with its event.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime


class AdmissionGate:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight limit must be at least 1, got {limit}")
        self.limit = limit
        self._in_use = 0
        self._waiting = 0  # live waiters; the heap also holds withdrawn ones until popped
        self._heap: list[tuple[datetime, int, asyncio.Future[bool]]] = []
        self._order = itertools.count()  # ties on the due time go in arrival order

    @property
    def in_use(self) -> int:
        """Slots held: slices between their claim and their outcome."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Slices waiting for a slot."""
        return self._waiting

    async def acquire(self, due: datetime, within: float | None = None) -> bool:
        """Take a slot, waiting behind slices due earlier; False when `within` seconds
        passed first. A slot taken must be given back with `release()`."""
        if self._in_use < self.limit and self._waiting == 0:
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
            _, _, granted = heapq.heappop(self._heap)
            if granted.done():  # withdrawn (timed out or canceled)
                continue
            self._waiting -= 1
            granted.set_result(True)  # the slot moves to it: in_use stays the same
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
