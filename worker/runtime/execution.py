"""Guarded execution of one slice: claim, kill switch, breaker, submit with retries, record.

Every slice passes the same path, in this order:
1. claim: scheduled → submitting, compare-and-set (anything else is skipped, nothing written);
2. kill switch engaged → blocked_kill_switch; breaker tripped → blocked_circuit_breaker;
3. submit through the broker, retrying transient failures (tenacity). Before every retry the
   parent's cancel and the kill switch are checked again, and an ambiguous failure (the order
   may have arrived) is looked up by client_order_id before anything is resent;
4. record the outcome (submitted with the broker order id, rejected, failed) with its event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from schemas.common import ParentStatus, SliceStatus
from worker.brokers.base import Broker, OrderRequest
from worker.core.records import ParentRecord, SliceRecord, SwitchState
from worker.core.retry import (
    BrokerRejection,
    DuplicateOrder,
    TransientBrokerError,
    backoff_seconds,
    is_retryable,
)
from worker.observability.metrics import WorkerMetrics
from worker.runtime.clock import Clock
from worker.runtime.dbretry import DatabaseUnavailable, NotLeading, with_db_retry
from worker.store.repository import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    attempts: int = 3
    first_wait: float = 2.0
    wait_cap: float = 8.0
    grace: timedelta = timedelta(seconds=60)
    breaker_max_failures: int = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    status: SliceStatus
    attempts: int
    broker_order_id: str | None = None
    reason: str | None = None
    sent_at: datetime | None = None


class _Stop(Exception):
    """A guard stopped the slice between two attempts."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class SliceExecutor:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        policy: ExecutionPolicy,
        clock: Clock,
        notify: Callable[[], None] = lambda: None,
        *,
        metrics: WorkerMetrics | None = None,
        leading: Callable[[], bool] = lambda: True,
        landed: Callable[[SliceRecord, str], None] = lambda record, broker_order_id: None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.policy = policy
        self.clock = clock
        self.notify = notify
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.leading = leading
        self.landed = landed  # told of every order recorded `submitted` (working_orders.py)

    async def run(self, parent_id: str, slice_num: int, due: datetime) -> None:
        """Fire one scheduled slice. Never raises: every path ends in a status or a log line."""
        ids: dict[str, object] = {"parent_order_id": parent_id, "slice_num": slice_num}

        async def claim() -> tuple[ParentRecord, SliceRecord, SwitchState] | None:
            if not self.leading():
                raise NotLeading("leadership lost; waiting to take it back")
            return await self.store.claim(parent_id, slice_num, self.clock())

        try:
            claimed = await with_db_retry(
                claim, clock=self.clock, deadline=due + self.policy.grace, what="claim", ids=ids,
            )
        except DatabaseUnavailable:
            # Left scheduled: the sweeper expires it, with its event, once the database is back.
            log.error("slice.claim_abandoned", extra=ids)
            return
        except Exception:
            log.exception("slice.claim_error", extra=ids)
            return
        if claimed is None:
            log.debug("slice.skipped", extra=ids)
            return
        parent, record, switches = claimed
        if self.clock() - record.scheduled_time > self.policy.grace:
            await self._record(parent, record, Outcome(
                SliceStatus.EXPIRED, record.attempts,
                reason=f"fired more than the grace ({self.policy.grace.total_seconds():.0f} s) late",
            ))
            return
        await self._execute(parent, record, switches)

    async def resume(self, parent: ParentRecord, record: SliceRecord) -> None:
        """Resolve a slice a dead process left `submitting`: never send it twice."""
        ids = _ids(record)
        try:
            found = await self.broker.find(record.client_order_id)
        except Exception as exc:
            log.warning("slice.resume_lookup_failed", extra={**ids, "error": str(exc)})
            await self._record(parent, record, Outcome(
                SliceStatus.FAILED, record.attempts,
                reason=f"could not look the order up after a restart: {exc}",
            ))
            return
        if found is not None:
            await self._record(parent, record, Outcome(
                SliceStatus.SUBMITTED, max(record.attempts, 1), found.broker_order_id,
                sent_at=record.sent_at,
            ))
            return
        if self.clock() - record.scheduled_time > self.policy.grace:
            await self._record(parent, record, Outcome(
                SliceStatus.EXPIRED, record.attempts,
                reason="interrupted by a restart and past the grace; not at the broker",
            ))
            return
        await self._execute(parent, record, await self.store.switches())

    async def _execute(self, parent: ParentRecord, record: SliceRecord, sw: SwitchState) -> None:
        if sw.kill_switch_engaged:
            outcome = Outcome(SliceStatus.BLOCKED_KILL_SWITCH, record.attempts,
                              reason=sw.kill_switch_reason or "kill switch engaged")
        elif sw.breaker_tripped:
            outcome = Outcome(SliceStatus.BLOCKED_CIRCUIT_BREAKER, record.attempts,
                              reason=sw.breaker_reason or "circuit breaker tripped")
        else:
            outcome = await self._submit(parent, record)
        await self._record(parent, record, outcome)

    async def _submit(self, parent: ParentRecord, record: SliceRecord) -> Outcome:
        order = OrderRequest(
            client_order_id=record.client_order_id, symbol=parent.symbol, side=parent.side,
            qty=record.qty, order_type=parent.order_type, time_in_force=parent.time_in_force,
            limit_price=parent.limit_price, stop_price=parent.stop_price,
        )
        attempts = record.attempts
        ambiguous = False
        sent_at = record.sent_at
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        if ambiguous:
                            found = await self._lookup(record)
                            if found is not None:
                                return Outcome(SliceStatus.SUBMITTED, attempts, found, sent_at=sent_at)
                        await self._guard_retry(record, attempts)
                    attempts += 1
                    sent_at = self.clock()
                    try:
                        placed = await self.broker.submit(order)
                        # Accepted now: lateness includes any wait for the rate limiter.
                        sent_at = self.clock()
                    except TransientBrokerError as exc:
                        ambiguous = ambiguous or exc.ambiguous
                        log.warning("slice.attempt_failed", extra={
                            **_ids(record), "attempt": attempts, "error": str(exc)})
                        raise
                    return Outcome(SliceStatus.SUBMITTED, attempts, placed.broker_order_id,
                                   sent_at=sent_at)
        except _Stop as stop:
            return stop.outcome
        except DuplicateOrder:
            found = await self._lookup(record)
            if found is not None:
                return Outcome(SliceStatus.SUBMITTED, attempts, found, sent_at=sent_at)
            return Outcome(SliceStatus.FAILED, attempts,
                           reason="broker reported a duplicate it cannot find")
        except BrokerRejection as exc:
            return Outcome(SliceStatus.REJECTED, attempts, reason=str(exc))
        except TransientBrokerError as exc:
            if ambiguous:
                try:
                    found = await self._lookup(record)
                except Exception:
                    found = None
                if found is not None:
                    return Outcome(SliceStatus.SUBMITTED, attempts, found, sent_at=sent_at)
            return Outcome(SliceStatus.FAILED, attempts,
                           reason=f"retries exhausted after {attempts} attempts: {exc}")
        except Exception as exc:
            log.exception("slice.submit_error", extra=_ids(record))
            return Outcome(SliceStatus.FAILED, attempts, reason=f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        return backoff_seconds(state.attempt_number, self.policy.first_wait, self.policy.wait_cap)

    async def _lookup(self, record: SliceRecord) -> str | None:
        found = await self.broker.find(record.client_order_id)
        return found.broker_order_id if found is not None else None

    async def _guard_retry(self, record: SliceRecord, attempts: int) -> None:
        """Cancel and kill switch, read again before every retry attempt."""
        status, sw = await self.store.guard_state(record.parent_order_id)
        if status is ParentStatus.CANCELED:
            raise _Stop(Outcome(SliceStatus.CANCELED, attempts, reason="parent canceled"))
        if sw.kill_switch_engaged:
            raise _Stop(Outcome(SliceStatus.BLOCKED_KILL_SWITCH, attempts,
                                reason=sw.kill_switch_reason or "kill switch engaged"))

    async def _record(self, parent: ParentRecord, record: SliceRecord, outcome: Outcome) -> None:
        """Write the outcome. An order that went out is recorded whatever it takes."""
        ids = _ids(record)
        went_out = outcome.status is SliceStatus.SUBMITTED
        try:
            updated = await with_db_retry(
                lambda: self.store.finish(
                    parent, record, outcome.status, self.clock(),
                    max_failures=self.policy.breaker_max_failures, reason=outcome.reason,
                    broker_order_id=outcome.broker_order_id, attempts=outcome.attempts,
                    sent_at=outcome.sent_at,
                ),
                clock=self.clock,
                deadline=None if went_out else record.scheduled_time + self.policy.grace * 10,
                what="record", ids=ids,
            )
        except Exception:
            # Left `submitting`: recovery looks the order up at the broker and settles it.
            log.exception("slice.record_failed", extra={**ids, "status": outcome.status.value})
            return
        self.notify()
        if updated is not None:
            self.metrics.slice_recorded(outcome.status, outcome.attempts, record.scheduled_time,
                                        outcome.sent_at)
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
            log.warning(f"slice.{outcome.status.value}", extra=extra)


def _ids(record: SliceRecord) -> dict[str, object]:
    return {
        "parent_order_id": record.parent_order_id,
        "slice_num": record.slice_num,
        "client_order_id": record.client_order_id,
    }
