"""Coalescing the per-slice statements of slices that fire together.

Each slice still claims and records on its own (`SliceExecutor` calls `claim` and `finish`
per slice), but the calls made in the same event-loop turn, up to `max_size`, go to the store
as one `claim_many` or `finish_many`. Slices due in the same moment reach their claim in the
same turn (the scheduler wakes every due job at once), and a group of outcomes releases its
slots at the gate together, so the next claims group up as well.

No time window: the group is sent at the next turn of the loop, so a lone call waits one
turn (microseconds, see docs/performance.md) and never a timer. Every caller gets its own
answer: a claim only for its own key (a key asked twice in one group is answered once, the
other caller gets None, as a second single claim would), an outcome only its own row. When the
group's statement fails:
- an outage (the database unreachable, the pool timed out: `is_outage`) fails every caller with
  it, as each single call would have failed; each caller's `with_db_retry` then retries its own
  call, which joins a later group. Nothing of the group was written: a claim group is one
  statement (`Store.claim_many` sends up to CLAIM_SIZES[-1] keys as one), an outcome group
  one transaction;
- any other error is not assumed to be everyone's: each call of the group is sent again alone,
  and each caller gets what its single call returns or raises.
A group of one is sent as the single call. On PostgreSQL, where a lone outcome is one statement
in autocommit (`Store.finish`'s fast path), outcome groups of up to ALONE_UP_TO are sent as
single calls at once; only larger groups go as one `finish_many`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

from worker.brokers.orders import OrderView
from worker.core.outcomes import Outcome
from worker.core.records import ParentRecord, SliceRecord
from worker.runtime.ports import Claimed, SliceKey, SliceStore
from worker.store.engine import is_outage
from worker.store.slices import CLAIM_SIZES

Item = TypeVar("Item")
Answer = TypeVar("Answer")

# The most keys one claim statement takes (Store.claim_many sends up to this many as one).
MAX_CLAIMS = CLAIM_SIZES[-1]
# Outcomes per transaction: enough for every slot of a large admission gate.
MAX_FINISHES = 64
# Where a lone outcome is one statement (PostgreSQL), groups up to this size are sent as single
# statements at once: measured cheaper than one finish_many for outcomes of different parents
# up to 8 (each parent's open count is then one more statement in the transaction), dearer
# at 14 (docs/decisions.md).
ALONE_UP_TO = 8


class Coalescer(Generic[Item, Answer]):
    """Calls made in one event-loop turn, sent as one call of `send_many`.

    `send_many(items)` answers each item in order: its result, or the exception its caller
    gets. If it raises, every caller of the group gets that exception.
    """

    def __init__(self, send_many: Callable[[list[Item]], Awaitable[list[Answer | Exception]]],
                 max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self._send_many = send_many
        self.max_size = max_size
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._turn_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()  # kept referenced until done
        self.groups = 0  # groups sent so far (tests and metrics read it)

    async def call(self, item: Item) -> Answer:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        self._waiting.append((item, answer))
        if len(self._waiting) >= self.max_size:
            self._send()
        elif not self._turn_scheduled:
            self._turn_scheduled = True
            loop.call_soon(self._end_of_turn)
        return await answer

    def _end_of_turn(self) -> None:
        self._turn_scheduled = False
        self._send()

    def _send(self) -> None:
        # A caller canceled before its group left is dropped: nobody would act on its answer.
        group = [(item, answer) for item, answer in self._waiting if not answer.done()]
        self._waiting = []
        if not group:
            return
        self.groups += 1
        task = asyncio.get_running_loop().create_task(self._answer(group))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _answer(self, group: list[tuple[Item, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self._send_many([item for item, _ in group])
        except asyncio.CancelledError:  # shutdown: the callers are told the same
            for _, answer in group:
                answer.cancel()
            raise
        except Exception as exc:  # every caller learns it, as it would have alone
            for _, answer in group:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for (_, answer), result in zip(group, answers, strict=True):
            if answer.done():  # its caller was canceled meanwhile
                continue
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)


async def _all_alone(calls: list[Callable[[], Awaitable[Answer]]]) -> list[Answer | Exception]:
    """Every call on its own, all at once: each with its own result or error."""
    answers: list[Answer | Exception] = []
    for result in await asyncio.gather(*(call() for call in calls), return_exceptions=True):
        if not isinstance(result, Exception) and isinstance(result, BaseException):
            raise result  # canceled: not an answer
        answers.append(result)
    return answers


async def _each_alone(calls: list[Callable[[], Awaitable[Answer]]]) -> list[Answer | Exception]:
    """Every call on its own, one after the other: each with its own result or error."""
    answers: list[Answer | Exception] = []
    for call in calls:
        try:
            answers.append(await call())
        except Exception as exc:
            answers.append(exc)
    return answers


ClaimCall = tuple[SliceKey, datetime]
# The broker's view comes with a `submitted` outcome: applied in the same transaction.
FinishCall = tuple[ParentRecord, SliceRecord, Outcome, datetime, OrderView | None]


class ClaimBatcher:
    """`claim` per slice; one `claim_many` statement per group."""

    def __init__(self, store: SliceStore, max_size: int = MAX_CLAIMS) -> None:
        self.store = store
        self._coalescer: Coalescer[ClaimCall, Claimed | None] = Coalescer(
            self._claim_group, min(max_size, MAX_CLAIMS))

    @property
    def groups(self) -> int:
        return self._coalescer.groups

    async def claim(self, parent_id: str, slice_num: int, now: datetime) -> Claimed | None:
        """As SliceStore.claim: scheduled → submitting, with the parent and the switches the
        group's statement read; None when the slice was not scheduled."""
        return await self._coalescer.call(((parent_id, slice_num), now))

    async def _claim_group(self, calls: list[ClaimCall]) -> list[Claimed | Exception | None]:
        if len(calls) == 1:
            (pid, num), now = calls[0]
            return [await self.store.claim(pid, num, now)]
        now = max(at for _, at in calls)
        try:
            claimed = await self.store.claim_many([key for key, _ in calls], now)
        except Exception as exc:
            if is_outage(exc):
                raise
            return await _each_alone([_claim_alone(self.store, key, at) for key, at in calls])
        answers: list[Claimed | Exception | None] = []
        for key, _ in calls:
            # A key twice in one group: claimed once, so answered once.
            answers.append(claimed.pop(key, None))
        return answers


def _claim_alone(store: SliceStore, key: SliceKey,
                 now: datetime) -> Callable[[], Awaitable[Claimed | None]]:
    return lambda: store.claim(key[0], key[1], now)


class FinishBatcher:
    """`finish` per slice; one `finish_many` transaction per group."""

    def __init__(self, store: SliceStore, *, max_failures: int,
                 max_size: int = MAX_FINISHES) -> None:
        self.store = store
        self.max_failures = max_failures
        self.alone_up_to = ALONE_UP_TO if store.one_statement_outcomes else 1
        self._coalescer: Coalescer[FinishCall, SliceRecord | None] = Coalescer(
            self._finish_group, max_size)

    @property
    def groups(self) -> int:
        return self._coalescer.groups

    async def finish(self, parent: ParentRecord, record: SliceRecord, outcome: Outcome,
                     now: datetime, view: OrderView | None = None) -> SliceRecord | None:
        """As SliceStore.finish: the outcome with its event (and the broker's view of a sent
        order); None when someone else settled the slice first."""
        return await self._coalescer.call((parent, record, outcome, now, view))

    async def _finish_group(self, calls: list[FinishCall]) -> list[SliceRecord | Exception | None]:
        if len(calls) == 1:
            return [await self._finish_alone(calls[0])()]
        if len(calls) <= self.alone_up_to:
            return await _all_alone([self._finish_alone(call) for call in calls])
        now = max(call[3] for call in calls)
        try:
            written = await self.store.finish_many([(p, r, o) for p, r, o, _, _ in calls], now,
                                                   max_failures=self.max_failures,
                                                   views=[call[4] for call in calls])
        except Exception as exc:
            if is_outage(exc):
                raise
            return await _each_alone([self._finish_alone(call) for call in calls])
        return list(written)

    def _finish_alone(self, call: FinishCall) -> Callable[[], Awaitable[SliceRecord | None]]:
        parent, record, outcome, now, view = call
        return lambda: self.store.finish(parent, record, outcome, now,
                                         max_failures=self.max_failures, view=view)
