"""Guarded execution of one slice: claim, guards, submit with retries, record.

Every slice passes the same path, in this order:
0. a slot at the admission gate (`admission.py`): at most `limit` slices between claim and
   outcome, the others waiting in order of due time; one whose grace runs out while it waits is
   never claimed, and the store's batch expiry ends it `expired`, with its event;
1. claim: scheduled → submitting, compare-and-set (anything else is skipped, nothing written);
2. the guards (`core.guards`: cancel, kill switch, breaker, grace) on what the claim read;
3. submit through the broker, retrying transient failures (tenacity). The guards are read
   again right before every send, after whatever the send waited for (the broker's rate
   limiter, a free connection, a backoff); a slice stopped there ends in the guard's status and
   nothing is sent. An ambiguous failure (the order may have arrived) is looked up by
   client_order_id before anything is resent; a lookup the broker cannot answer is repeated
   until it does, the slice staying `submitting` meanwhile: never `failed` on a guess;
4. record the outcome (submitted with the broker order id, rejected, failed...) with its event;
   `submitted` is recorded with the broker's answer to the submit (its view of the order), in
   the same transaction: a market order may come back filled already.

Between 2 and 3 the slice is sized (contract v2): with `slice_end: cancel` the parent's
earlier orders still working are canceled and their outcome applied first (`prepare`), then
catch-up (core.catchup) gives the qty from the parent's filled and working qty. A slice left
nothing to send ends `closed` ("nothing left to send"), without a broker call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from twap_schemas.common import SliceStatus
from worker.brokers.base import Broker, NotSent, OrderRequest
from worker.brokers.orders import OrderView
from worker.core.catchup import slice_qty
from worker.core.guards import stop_reason
from worker.core.outcomes import Outcome
from worker.core.records import ParentRecord, SliceRecord, SwitchState
from worker.core.retry import (
    BrokerRejection,
    DuplicateOrder,
    TransientBrokerError,
    backoff_seconds,
    is_retryable,
)
from worker.core.slice_end import planned_quantities
from worker.observability.metrics import WorkerMetrics
from worker.runtime.admission import AdmissionGate
from worker.runtime.batching import ClaimBatcher, FinishBatcher
from worker.runtime.clock import Clock
from worker.runtime.dbretry import DatabaseUnavailable, NotLeading, with_db_retry
from worker.runtime.errorlog import ErrorLog
from worker.runtime.ports import SliceStore
from worker.runtime.risk import SliceRisk
from worker.runtime.scheduling import Spawn

log = logging.getLogger(__name__)

# The shortest wait between two lookups of an unresolved order (the policy's first wait may be 0).
MIN_LOOKUP_WAIT = 0.01
# Rows the store's expire_overdue handles per statement (its default limit).
EXPIRE_BATCH = 1000
# Slices in flight when nothing says otherwise: the default pool (10) + broker concurrency (4).
DEFAULT_IN_FLIGHT = 14
# Why a slice sent nothing: the parent's qty is already filled or working at the broker.
NOTHING_LEFT = "nothing left to send: the parent's qty is filled or working at the broker"


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    attempts: int = 3
    first_wait: float = 2.0
    wait_cap: float = 8.0
    grace: timedelta = timedelta(seconds=60)
    breaker_max_failures: int = 5
    # A guard read younger than this (the claim's, timed from before its statement) is not
    # repeated before the first send: nothing waited in between. A wait in the rate limiter,
    # for a connection or a backoff takes longer, and a retry or a resume always reads again.
    guard_fresh: float = 0.002


@dataclass(slots=True)
class _Sends:
    """A slice's sends so far in this process."""

    attempts: int
    sent_at: datetime | None
    ambiguous: bool = False  # one of them may have reached the broker unanswered
    looked_at: float | None = None  # monotonic time of the last guard read, if any
    view: OrderView | None = None  # the broker's view of the order, once it is known


class _Stop(NotSent):
    """The pre-send guard stopped the slice. `outcome` None: not ours to record (another
    process or path settled it, or this worker is not leading)."""

    def __init__(self, outcome: Outcome | None) -> None:
        super().__init__(outcome.reason if outcome is not None else "not ours to send")
        self.outcome = outcome


SliceKey = tuple[str, int]


class SliceExecutor:
    def __init__(
        self,
        store: SliceStore,
        broker: Broker,
        policy: ExecutionPolicy,
        clock: Clock,
        notify: Callable[[], None] = lambda: None,
        *,
        metrics: WorkerMetrics | None = None,
        leading: Callable[[], bool] = lambda: True,
        landed: Callable[[SliceRecord, str], None] = lambda record, broker_order_id: None,
        follow: Following | None = None,
        gate: AdmissionGate | None = None,
        prepare: Callable[[ParentRecord, int], Awaitable[ParentRecord]] | None = None,
        risk: SliceRisk | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.policy = policy
        self.clock = clock
        self.notify = notify
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.leading = leading
        self.landed = landed  # told of every order recorded `submitted` (working_orders.py)
        self.follow = follow if follow is not None else _NotFollowing()
        self._held: set[SliceKey] = set()
        self.bursts = 0  # how often the held set emptied: the worker's cue to tidy its memory
        self.gate = gate if gate is not None else AdmissionGate(DEFAULT_IN_FLIGHT)
        self.risk = risk  # the pre-trade risk check of every slice (runtime.risk), if any
        self.metrics.in_flight_limit.set(self.gate.limit)
        self.errors = ErrorLog(log, self.metrics)
        self._expiry: asyncio.Task[None] | None = None
        self._expiry_wanted = False
        self._draining = False
        # Claims and outcomes of slices firing together go to the store in groups, each
        # slice still with its own answer (batching.py).
        self.claims = ClaimBatcher(store)
        self.finishes = FinishBatcher(store, max_failures=policy.breaker_max_failures)
        # Before a slice is sized: end the parent's earlier orders (slice_end), fresh fills.
        self.prepare = prepare

    def held(self) -> frozenset[SliceKey]:
        """Slices this process is working on right now (the sweeper leaves them alone)."""
        return frozenset(self._held)

    def _release(self, key: SliceKey) -> None:
        self._held.discard(key)
        if not self._held:
            self.bursts += 1
            # A set keeps the table of its busiest moment even once empty (256 or 512 KiB
            # after 5,500 slices were held at once): a fresh one gives it back.
            self._held = set()

    def fire(self, parent_id: str, slice_num: int, due: datetime, spawn: Spawn) -> None:
        """The scheduler's hand-over of a slice that fell due: its task starts (through
        `spawn`) when a slot at the gate is its, at once if one is free. Until then it waits
        as an entry of the gate's queue, not as a task (admission.py)."""
        key = (parent_id, slice_num)
        if key in self._held:
            log.debug("slice.skipped", extra={"parent_order_id": parent_id,
                                              "slice_num": slice_num})
            return
        if not self.gate.free and self._past_grace(due):
            # Past its grace already, and it would wait: dropped now, as a waiter whose grace
            # ran out (nothing claimed, the batch expiry ends it).
            self._expired_waiting({"parent_order_id": parent_id, "slice_num": slice_num})
            return
        self._held.add(key)  # waiting counts as held: the sweeper leaves it alone
        try:
            self.gate.enqueue(due, functools.partial(self._start, key, due, spawn))
        except BaseException:
            self._release(key)
            raise

    def _start(self, key: SliceKey, due: datetime, spawn: Spawn, waited: bool) -> bool:
        """A slot is this slice's: start its task, which gives the slot back when it ends,
        whichever way (even cancelled before its first step). Declined (False) when it waited
        past its grace (it was never claimed: the batch expiry ends it; one late already when
        it fell due is claimed, and the guards end it with its reason) or the worker is
        stopping (it stays `scheduled` for the next start)."""
        parent_id, slice_num = key
        ids: dict[str, object] = {"parent_order_id": parent_id, "slice_num": slice_num}
        try:
            if waited and self._past_grace(due):
                self._release(key)
                self._expired_waiting(ids)
                return False
            task = spawn(self._admitted(key, due, ids))
        except BaseException:
            self._release(key)
            raise
        if task is None:
            self._release(key)
            return False
        task.add_done_callback(functools.partial(self._ended, key))
        return True

    def _past_grace(self, due: datetime) -> bool:
        """Later than the grace after `due` (the store's expiry and the guards use `>` too)."""
        return self.clock() > due + self.policy.grace

    async def _admitted(self, key: SliceKey, due: datetime, ids: dict[str, object]) -> None:
        try:
            await self._run(key[0], key[1], due, ids)
        except Exception as exc:
            self.errors.error("slice.execute_error", exc, ids)

    def _ended(self, key: SliceKey, _task: asyncio.Task[None]) -> None:
        self._release(key)
        self.gate.release()

    async def run(self, parent_id: str, slice_num: int, due: datetime) -> None:
        """Run one scheduled slice to its end in the caller's task, its slot awaited here (the
        scheduler hands slices over with `fire` instead). Never raises: every path ends in a
        status, or leaves the slice `submitting` for the sweeper to settle, with a log line."""
        key = (parent_id, slice_num)
        ids: dict[str, object] = {"parent_order_id": parent_id, "slice_num": slice_num}
        if key in self._held:
            log.debug("slice.skipped", extra=ids)
            return
        self._held.add(key)
        try:
            # Past the grace a slice is never sent: waiting longer for a slot is pointless.
            left = (due + self.policy.grace - self.clock()).total_seconds()
            async with self.gate.slot(due, within=left) as admitted:
                if not admitted:
                    self._expired_waiting(ids)
                    return
                await self._run(parent_id, slice_num, due, ids)
        except Exception as exc:
            self.errors.error("slice.execute_error", exc, ids)
        finally:
            self._release(key)

    def _expired_waiting(self, ids: dict[str, object]) -> None:
        """A slice's grace ran out at the gate: it is still `scheduled`, never claimed. One
        batch statement (the sweeper's) expires it with its event, and every other such slice
        with it, instead of a claim and a write per slice when the database is the bottleneck."""
        self.metrics.expired_waiting.inc()
        log.debug("slice.expired_waiting", extra=ids)
        if self._draining:
            return  # shutting down: the sweeper of the next start expires it
        self._expiry_wanted = True
        if self._expiry is None or self._expiry.done():
            self._expiry = asyncio.create_task(self._expire_missed())

    async def _expire_missed(self) -> None:
        while self._expiry_wanted:
            self._expiry_wanted = False
            if not self.leading():
                return  # the sweeper of whoever leads expires them
            try:
                while True:
                    expired = await self.store.expire_overdue(self.clock(), self.policy.grace,
                                                             limit=EXPIRE_BATCH)
                    self.metrics.slices_ended(SliceStatus.EXPIRED, expired)
                    if expired:
                        self.notify()
                    if expired < EXPIRE_BATCH:
                        break
            except Exception as exc:  # the sweeper tries again within seconds
                self.errors.error("slice.expire_error", exc, {})
                return

    async def drain(self) -> None:
        """Wait for the batch expiry, if one is running, and start no other (shutdown)."""
        self._draining = True
        if self._expiry is not None:
            await asyncio.gather(self._expiry, return_exceptions=True)
        self.errors.close()

    async def _run(self, parent_id: str, slice_num: int, due: datetime,
                   ids: dict[str, object]) -> None:
        looked_at = 0.0

        async def claim() -> tuple[ParentRecord, SliceRecord, SwitchState] | None:
            nonlocal looked_at
            if not self.leading():
                raise NotLeading("leadership lost; waiting to take it back")
            looked_at = time.monotonic()
            return await self.claims.claim(parent_id, slice_num, self.clock())

        try:
            claimed = await with_db_retry(
                claim, clock=self.clock, deadline=due + self.policy.grace, what="claim", ids=ids,
            )
        except DatabaseUnavailable:
            # Left scheduled: the sweeper expires it, with its event, once the database is back.
            log.error("slice.claim_abandoned", extra=ids)
            return
        except Exception as exc:
            self.errors.error("slice.claim_error", exc, ids)
            return
        if claimed is None:
            log.debug("slice.skipped", extra=ids)
            return
        parent, record, switches = claimed
        stop = stop_reason(parent.status, switches, late_by=self.clock() - record.scheduled_time,
                           grace=self.policy.grace)
        if stop is not None:
            await self._record(parent, record, Outcome(stop.status, record.attempts,
                                                       reason=stop.reason))
            return
        if self.prepare is not None:
            parent = await self.prepare(parent, record.slice_num)
            looked_at = 0.0  # the guards are read again before the send
        sized = await self._size(parent, record, ids)
        if sized is None:
            return
        record = sized
        if record.qty == 0:
            await self._record(parent, record, Outcome(SliceStatus.CLOSED, record.attempts,
                                                       reason=NOTHING_LEFT))
            return
        if self.risk is not None:
            # On the qty it sends (catch-up included). May wait for the slice's turn under
            # max_slices_per_minute: the guards are read again before the send.
            risk_stop = await self.risk.before_slice(parent, record, self.policy.grace)
            if risk_stop is not None:
                await self._record(parent, record, Outcome(risk_stop.status, record.attempts,
                                                           reason=risk_stop.reason))
                return
            looked_at = 0.0
        sends: list[OrderView] = []
        outcome = await self._submit(parent, record, looked_at, sends)
        await self._record(parent, record, outcome, sends[-1] if sends else None)

    async def _size(self, parent: ParentRecord, record: SliceRecord,
                    ids: dict[str, object]) -> SliceRecord | None:
        """Catch-up: the qty this slice sends now, written before the send when it differs
        from the plan (a lookup after a crash must know what went out). None: the write
        failed (the slice stays submitting; the sweeper settles it)."""
        planned = planned_quantities(parent)
        num = record.slice_num
        if num >= len(planned) or planned[num] != record.qty:
            return record  # a plan this rule does not know (amended, or sized already)
        pid = parent.parent_order_id

        def size(filled: int, working: int) -> int:
            return slice_qty(planned, num, total_qty=parent.qty, filled_qty=filled,
                             working_qty=working, catch_up=parent.catch_up,
                             max_ratio=parent.max_catch_up_ratio)

        qty = size(parent.filled_qty, parent.working_qty)  # as the claim read the parent
        if qty == record.qty:
            return record
        # Off the plan, as of the claim's read: decide again under the parent's lock, with
        # its fills and working qty now, its slices being sent (submitting) and the earlier
        # ones still to fire (late, all due at once after an outage), which send their own
        # qty: only a real shortfall is caught up, and two slices sized at once never both
        # catch up the same one.
        try:
            sized_qty = await with_db_retry(
                lambda: self.store.size_claimed(pid, num, size, record.qty, self.clock()),
                clock=self.clock, deadline=record.scheduled_time + self.policy.grace,
                what="size", ids=ids)
        except Exception as exc:
            self.errors.error("slice.size_failed", exc, ids)
            return None
        if sized_qty is None:
            log.warning("slice.settled_elsewhere", extra=ids)
            return None
        if sized_qty == record.qty:
            return record
        sized = replace(record, qty=sized_qty, planned_qty=record.qty)
        log.info("slice.caught_up", extra={**ids, "planned_qty": record.qty, "qty": sized_qty})
        return sized

    async def resume(self, parent: ParentRecord, record: SliceRecord) -> None:
        """Settle a slice left `submitting` (by a dead process, or a path that gave up on it):
        look it up first, never send it twice; resend only what the broker says it lacks."""
        key = (record.parent_order_id, record.slice_num)
        if key in self._held:
            return
        self._held.add(key)  # before any await: the sweeper's next pass must see it
        # A note an earlier lookup left in the reason must not outlive the slice's settling.
        record = replace(record, reason=None)
        try:
            async with self.gate.slot(record.scheduled_time):  # no timeout: it may have gone out
                await self._settle(parent, record)
        except Exception as exc:
            self.errors.error("slice.resume_error", exc, _ids(record))
        finally:
            self._release(key)

    async def _settle(self, parent: ParentRecord, record: SliceRecord) -> None:
        """Look the slice's order up; record it found, expired, or sent now."""
        found = await self._resolve(record)
        sends: list[OrderView] = []
        if found is not None:
            sends.append(found)
            outcome: Outcome | None = Outcome(
                SliceStatus.SUBMITTED, max(record.attempts, 1), found.broker_order_id,
                sent_at=record.sent_at,
            )
        elif self.clock() - record.scheduled_time > self.policy.grace:
            outcome = Outcome(SliceStatus.EXPIRED, record.attempts,
                              reason="interrupted and past the grace; not at the broker")
        else:
            # Sent only if the risk check and the guards allow it right before the send.
            stop = await self.risk.before_slice(parent, record, self.policy.grace) \
                if self.risk is not None else None
            outcome = Outcome(stop.status, record.attempts, reason=stop.reason) \
                if stop is not None else await self._submit(parent, record, None, sends)
        await self._record(parent, record, outcome, sends[-1] if sends else None)

    async def _submit(self, parent: ParentRecord, record: SliceRecord,
                      looked_at: float | None = None,
                      views: list[OrderView] | None = None) -> Outcome | None:
        """Send with retries; None when a guard found the slice is not ours to settle.
        `looked_at`: when the guards were last read (monotonic), if they were. The broker's
        view of the order, when one is had, is appended to `views`."""
        views = views if views is not None else []
        self.follow.sending(record.client_order_id)
        order = OrderRequest(
            client_order_id=record.client_order_id, symbol=parent.symbol, side=parent.side,
            qty=record.qty, order_type=parent.order_type, time_in_force=parent.time_in_force,
            limit_price=parent.limit_price, stop_price=parent.stop_price,
        )
        sends = _Sends(record.attempts, record.sent_at, looked_at=looked_at)

        async def before_send() -> None:
            now = time.monotonic()
            if sends.looked_at is None or now - sends.looked_at >= self.policy.guard_fresh:
                stop = await self._pre_send_stop(record, sends.attempts)
                if stop is not None:
                    raise stop
            sends.looked_at = None  # a retry always reads again
            sends.attempts += 1
            sends.sent_at = self.clock()

        def submitted(view: OrderView, sent_at: datetime | None) -> Outcome:
            views.append(view)
            return Outcome(SliceStatus.SUBMITTED, sends.attempts, view.broker_order_id,
                           sent_at=sent_at)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if sends.ambiguous:
                        found = await self._resolve(record)
                        if found is not None:
                            return submitted(found, sends.sent_at)
                    try:
                        placed = await self.broker.submit(order, before_send)
                    except TransientBrokerError as exc:
                        sends.ambiguous = sends.ambiguous or exc.ambiguous
                        log.warning("slice.attempt_failed", extra={
                            **_ids(record), "attempt": sends.attempts, "error": str(exc)})
                        raise
                    # Accepted now: lateness includes any wait for the rate limiter.
                    return submitted(placed, self.clock())
        except _Stop as stop:
            return stop.outcome
        except DuplicateOrder:
            found = await self._resolve(record)
            if found is not None:
                return submitted(found, sends.sent_at)
            return Outcome(SliceStatus.FAILED, sends.attempts,
                           reason="broker reported a duplicate it cannot find")
        except BrokerRejection as exc:
            return Outcome(SliceStatus.REJECTED, sends.attempts, reason=str(exc))
        except TransientBrokerError as exc:
            if sends.ambiguous:
                found = await self._resolve(record)
                if found is not None:
                    return submitted(found, sends.sent_at)
            return Outcome(SliceStatus.FAILED, sends.attempts,
                           reason=f"retries exhausted after {sends.attempts} attempts: {exc}")
        except Exception as exc:
            self.errors.error("slice.submit_error", exc, _ids(record))
            if sends.attempts > record.attempts:  # it may have gone out: ask before deciding
                found = await self._resolve(record)
                if found is not None:
                    return submitted(found, sends.sent_at)
            return Outcome(SliceStatus.FAILED, sends.attempts,
                           reason=f"{type(exc).__name__}: {exc}")
        finally:
            _released(retrying)
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        return backoff_seconds(state.attempt_number, self.policy.first_wait, self.policy.wait_cap)

    async def _pre_send_stop(self, record: SliceRecord, attempts: int) -> _Stop | None:
        """The guards, read again right before a send: one statement."""
        if not self.leading():
            log.warning("slice.not_sent_not_leading", extra=_ids(record))
            return _Stop(None)
        try:
            # Through an outage as the claim does: until the grace, then the slice is too late.
            state = await with_db_retry(
                lambda: self.store.guard_state(record.parent_order_id, record.slice_num),
                clock=self.clock, deadline=record.scheduled_time + self.policy.grace,
                what="guard", ids=_ids(record),
            )
        except DatabaseUnavailable:
            return _Stop(Outcome(SliceStatus.EXPIRED, attempts, reason=(
                "the guards could not be read within the grace (database unavailable)")))
        except Exception as exc:  # unreadable state counts as engaged: fail closed
            return _Stop(Outcome(SliceStatus.BLOCKED_KILL_SWITCH, attempts,
                                 reason=f"guard state unreadable (fail closed): {exc}"[:500]))
        if state is None or state.slice_status is not SliceStatus.SUBMITTING:
            log.warning("slice.settled_elsewhere", extra={
                **_ids(record), "status": state.slice_status.value if state else None})
            return _Stop(None)
        # ParentStatus.PAUSED (contract v2) is decided in stop_reason, like every other guard.
        stop = stop_reason(state.parent_status, state.switches,
                           late_by=self.clock() - record.scheduled_time, grace=self.policy.grace)
        if stop is None:
            return None
        return _Stop(Outcome(stop.status, attempts, reason=stop.reason))

    async def _resolve(self, record: SliceRecord) -> OrderView | None:
        """The broker's definite answer about this slice's order: found, or None when the broker
        says it has no such order. A lookup that fails (timeout, error page) is repeated with
        backoff until it answers; meanwhile the slice stays `submitting`, says so in its reason,
        and counts in `twap_slices_unresolved`."""
        wait = max(self.policy.first_wait, MIN_LOOKUP_WAIT)
        failures = 0
        try:
            while True:
                try:
                    return await self.broker.find(record.client_order_id)
                except Exception as exc:
                    failures += 1
                    error = str(exc)[:200] or type(exc).__name__
                    if failures == 1:
                        self.metrics.unresolved.inc()
                        await self._note(record, f"order status unknown: the broker lookup "
                                                 f"failed ({error}); looking it up again")
                    log.warning("slice.lookup_unresolved", extra={
                        **_ids(record), "lookups": failures, "error": error,
                        "retry_in_s": round(wait, 3)})
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, max(self.policy.wait_cap, MIN_LOOKUP_WAIT))
        finally:
            if failures:
                self.metrics.unresolved.dec()
                log.info("slice.lookup_resolved", extra={**_ids(record), "lookups": failures})

    async def _note(self, record: SliceRecord, reason: str) -> None:
        try:
            await self.store.note_claimed(record.parent_order_id, record.slice_num, reason,
                                          self.clock())
        except Exception as exc:  # only a note: the lookups go on without it
            log.warning("slice.note_failed", extra={**_ids(record), "error": str(exc)[:200]})

    async def _record(self, parent: ParentRecord, record: SliceRecord,
                      outcome: Outcome | None, view: OrderView | None = None) -> None:
        """Write the outcome. An order that went out is recorded whatever it takes, with the
        broker's view of it (`view`). None: the slice is not ours to settle (the guard said
        why, in the log)."""
        written: SliceRecord | None = None
        try:
            written = await self._write(parent, record, outcome, view)
        finally:
            self.follow.recorded(record.client_order_id, written)

    async def _write(self, parent: ParentRecord, record: SliceRecord,
                     outcome: Outcome | None, view: OrderView | None) -> SliceRecord | None:
        if outcome is None:
            return None
        ids = _ids(record)
        went_out = outcome.status is SliceStatus.SUBMITTED
        try:
            updated = await with_db_retry(
                # An order that went out is recorded with the broker's view of it (the
                # fills it already has), in the same transaction.
                lambda: self.finishes.finish(parent, record, outcome, self.clock(),
                                             view if went_out else None),
                clock=self.clock,
                deadline=None if went_out else record.scheduled_time + self.policy.grace * 10,
                what="record", ids=ids,
            )
        except Exception as exc:
            # Left `submitting`: the sweeper looks the order up at the broker and settles it.
            self.errors.error("slice.record_failed", exc, {**ids, "status": outcome.status.value})
            return None
        self.notify()
        if updated is not None:
            self.metrics.slice_recorded(outcome.status, outcome.attempts, record.scheduled_time,
                                        outcome.sent_at)
            if went_out and updated.filled_qty:  # the submit's own view filled it (in part)
                self.metrics.filled(updated.filled_qty)
            if went_out and updated.status is not SliceStatus.SUBMITTED:
                self.metrics.slices_ended(updated.status)
        extra = {**ids, "status": outcome.status.value, "attempts": outcome.attempts,
                 "broker_order_id": outcome.broker_order_id, "reason": outcome.reason}
        if updated is None:
            log.warning("slice.record_conflict", extra=extra)
        elif went_out:
            if outcome.sent_at is not None:
                lateness = outcome.sent_at - record.scheduled_time
                extra["lateness_ms"] = round(lateness.total_seconds() * 1000, 3)
            log.info("slice.submitted", extra=extra)
            if outcome.broker_order_id is not None:
                self.landed(record, outcome.broker_order_id)
        else:
            # Nothing left to send is the plan working (catch-up met the qty), not a problem.
            routine = outcome.status is SliceStatus.CLOSED and outcome.reason == NOTHING_LEFT
            log.log(logging.INFO if routine else logging.WARNING,
                    f"slice.{outcome.status.value}", extra=extra)
        return updated


def _released(retrying: AsyncRetrying) -> None:
    """Break the reference cycles a finished AsyncRetrying holds (its thread-local statistics,
    its iteration state's bound methods, the retry state pointing back at it), so that they go
    by reference counting when the send is done. Left to the collector, the ones in flight at a
    full collection would be frozen with its survivors (observability.gcpause) and never freed:
    about 34 objects per send, for as long as the worker runs."""
    retrying.iter_state.reset()
    retrying.__dict__.clear()


class Following(Protocol):
    """Who follows orders at the broker (order_updates.py): told when the executor starts
    sending an order and when it has recorded what came of it."""

    def sending(self, client_order_id: str) -> None: ...

    def recorded(self, client_order_id: str, written: SliceRecord | None) -> None: ...


class _NotFollowing:
    def sending(self, client_order_id: str) -> None:
        pass

    def recorded(self, client_order_id: str, written: SliceRecord | None) -> None:
        pass


def _ids(record: SliceRecord) -> dict[str, object]:
    return {
        "parent_order_id": record.parent_order_id,
        "slice_num": record.slice_num,
        "client_order_id": record.client_order_id,
    }
