"""`Store`: the database as the rest of the worker sees it. One method, one transaction."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from twap_schemas.common import SliceStatus
from worker.core.access import Grant
from worker.core.fills import FillError
from worker.core.guards import GuardState
from worker.core.intake import IntakeItem
from worker.core.outcomes import Outcome
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord, SwitchState
from worker.core.risk import Limits
from worker.store import audit, fills, intake, outbox, outcomes, switches, turns, warmup
from worker.store import grants as grant_rows
from worker.store import limits as limit_rows
from worker.store import parents as parent_rows
from worker.store import slices as slice_rows
from worker.store.audit import AuditRow
from worker.store.dialects import dialect_for
from worker.store.engine import make_engine
from worker.store.intake import IntakeResult, Redate, Screening
from worker.store.operator_reads import OperatorReads
from worker.store.parents import CancelResult
from worker.store.slices import Claimed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingParent:
    """What the scheduler needs to re-arm a parent: its cadence and its next scheduled slice."""

    parent_order_id: str
    start_at: datetime
    interval_seconds: int
    total_slices: int
    next_slice: int
    next_due: datetime


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.db = dialect_for(engine)  # chosen once: nothing below asks which database
        self._single = self.db.single(engine)
        self.reads = OperatorReads(engine)  # the `twap` commands' reads, not the runtime's
        self._fence: Callable[[], int | None] | None = None
        # Told of each submit's view that could not be applied (the worker counts them).
        self.on_bad_view: Callable[[], None] = lambda: None

    def fence_claims(self, lock_pid: Callable[[], int | None]) -> None:
        """From now on a claim goes through only while the session `lock_pid()` names holds
        its advisory lock, checked by the claim's own statement; with no session, nothing is
        claimed. Only where the database can (PostgreSQL); a no-op on SQLite."""
        if self.db.fences_claims:
            self._fence = lock_pid

    def _lock_pid(self) -> tuple[bool, int | None]:
        """(may claim at all, the session to fence on)."""
        if self._fence is None:
            return True, None
        pid = self._fence()
        return pid is not None, pid

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> Store:
        return cls(make_engine(url, pool_size=pool_size))

    @property
    def dialect(self) -> str:
        return self.db.name

    @property
    def one_statement_outcomes(self) -> bool:
        """`finish` of an outcome other than `failed` is one autocommit statement."""
        return self.db.one_statement_outcomes

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def warm_up(self, now: datetime) -> int:
        """Compile each claim size and IN-list length (store/warmup.py) before the first
        request. Returns how many statements ran."""
        return await warmup.warm_up(self.engine, fenced=self._fence is not None, now=now)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    # -- the operations the original design named -------------------------------------------
    async def create_parent(
        self, parent: ParentRecord, slice_records: list[SliceRecord], now: datetime,
        messages: list[OutboxMessage] | None = None,
    ) -> None:
        async with self.transaction() as conn:
            await parent_rows.insert_many(conn, [(parent, slice_records)], now)
            await outbox.write(conn, messages or [], now)

    async def get_parent(self, parent_id: str) -> ParentRecord | None:
        async with self.engine.connect() as conn:
            return await parent_rows.get(conn, parent_id)

    async def get_slices(self, parent_id: str) -> list[SliceRecord]:
        async with self.engine.connect() as conn:
            return await slice_rows.of_parent(conn, parent_id)

    async def cancel_pending(self, parent_id: str, reason: str | None, now: datetime) -> int:
        async with self.transaction() as conn:
            return len((await parent_rows.cancel(conn, parent_id, reason, now)).canceled)

    # -- execution ---------------------------------------------------------------------------
    async def claim(self, parent_id: str, slice_num: int, now: datetime) -> Claimed | None:
        """scheduled → submitting, returning the slice, its parent and the switches as that
        statement read them; None: the slice was not scheduled (nothing written)."""
        may, lock_pid = self._lock_pid()
        if not may:
            return None
        async with self._single.begin() as conn:
            return await slice_rows.claim(conn, parent_id, slice_num, now, lock_pid)

    async def claim_many(self, keys: list[tuple[str, int]],
                         now: datetime) -> dict[tuple[str, int], Claimed]:
        """`claim` for slices due in the same moment, in one transaction (one statement per
        slices.CLAIM_SIZES chunk); the keys missing from the answer were not scheduled."""
        may, lock_pid = self._lock_pid()
        if not keys or not may:
            return {}
        async with self._single.begin() as conn:
            return await slice_rows.claim_many(conn, keys, now, lock_pid)

    async def guard_state(self, parent_id: str, slice_num: int) -> GuardState | None:
        """Parent, slice and switches as they are now: the read right before a send."""
        async with self.engine.connect() as conn:
            return await slice_rows.guard_state(conn, parent_id, slice_num)

    async def note_claimed(self, parent_id: str, slice_num: int, reason: str,
                           now: datetime) -> bool:
        """Say why a `submitting` slice is still unsettled (shown by `twap status`)."""
        async with self._single.begin() as conn:
            return await slice_rows.note_claimed(conn, parent_id, slice_num, reason, now)

    async def finish(self, parent: ParentRecord, record: SliceRecord, outcome: Outcome,
                     now: datetime, *, max_failures: int,
                     view: fills.BrokerView | None = None) -> SliceRecord | None:
        """Write a claimed slice's outcome with its event; None: someone else settled it.

        `view`: the broker's answer to the submit, applied in the same transaction as the
        `submitted` it follows (a market order may come back filled already), so no update
        of the order can be applied before the slice is known to be at the broker."""
        if (view is not None and outcome.status is SliceStatus.SUBMITTED
                and fills.says_more(view)):
            return (await self.finish_many([(parent, record, outcome)], now,
                                           max_failures=max_failures, views=[view]))[0]
        if self.db.one_statement_outcomes and outcome.status is not SliceStatus.FAILED:
            async with self._single.begin() as conn:
                updated, last = await outcomes.finish_alone(conn, parent, record, outcome, now)
            if last:
                try:
                    async with self._single.begin() as conn:
                        await parent_rows.complete_alone(conn, parent, now)
                except Exception as exc:  # the outcome is written; the sweeper completes it
                    log.warning("parent.completion_deferred", extra={
                        "parent_order_id": parent.parent_order_id, "error": repr(exc)[:200]})
            return updated
        return (await self.finish_many([(parent, record, outcome)], now,
                                       max_failures=max_failures))[0]

    async def finish_many(self, items: list[outcomes.Finished], now: datetime, *,
                          max_failures: int,
                          views: Sequence[fills.BrokerView | None] | None = None,
                          ) -> list[SliceRecord | None]:
        """Outcomes of many claimed slices in one transaction (outcomes.finish_many); per
        item the slice as written, None where someone else settled it first. `views[i]`: the
        broker's answer to item i's submit, written with its `submitted` as `finish` does."""
        if not items:
            return []
        bad: list[tuple[SliceRecord, fills.BrokerView, FillError]] = []
        async with self.transaction() as conn:
            written = await outcomes.finish_many(
                conn, items, now, max_failures=max_failures, views=views,
                on_bad_view=lambda record, view, error: bad.append((record, view, error)))
        # Reported once committed: a group that fails is sent again (whole or item by item),
        # and its bad views would be counted once per try.
        for record, view, error in bad:
            self._bad_view(record, view, error)
        return written

    def _bad_view(self, record: SliceRecord, view: fills.BrokerView, error: FillError) -> None:
        """A submit's answer that cannot be right is not applied, and must not hold back the
        `submitted` it came with (the slice would stay `submitting` and the sweeper would look
        it up again forever): the outcome is written alone and the stream or reconciliation
        brings the order's figures later."""
        log.error("slice.bad_broker_view", extra={
            "parent_order_id": record.parent_order_id, "slice_num": record.slice_num,
            "client_order_id": view.client_order_id, "filled_qty": view.filled_qty,
            "error": str(error)})
        self.on_bad_view()

    async def expire_overdue(self, now: datetime, grace: timedelta, limit: int = 1000) -> int:
        """Scheduled slices missed beyond the grace → expired, with events; returns how many."""
        reason = f"missed its due time by more than the grace ({grace.total_seconds():.0f} s)"
        async with self.transaction() as conn:
            return await outcomes.expire_overdue(conn, now - grace, reason, now, limit)

    async def claimed_slices(
        self, *, untouched_since: datetime | None = None, limit: int | None = None
    ) -> list[tuple[ParentRecord, SliceRecord]]:
        """Slices left `submitting` (a previous process died with them in its hands); with
        `untouched_since`, only those not written since then (the sweeper's orphans)."""
        async with self.engine.connect() as conn:
            return await slice_rows.claimed(conn, untouched_since, limit)

    async def pending_parents(self) -> list[PendingParent]:
        """Every parent with a scheduled slice, with the first one, for re-arming."""
        async with self.engine.connect() as conn:
            rows = await parent_rows.pending(conn)
        return [
            PendingParent(
                parent_order_id=r.parent_order_id,
                start_at=r.start_at,
                interval_seconds=r.interval_seconds,
                total_slices=r.total_slices,
                next_slice=r.next_slice,
                next_due=r.next_due,
            )
            for r in rows
        ]

    async def complete_finished_parents(self, now: datetime) -> int:
        """Active parents with no pending slice left become completed (after a crash). Asks
        the slices themselves, not the open counts: start-up trusts nothing it can check. One
        pass over the slices, hashed: it stays fast with table statistics not yet gathered
        (right after a bulk load), where a per-parent probe was measured to time out."""
        async with self.transaction() as conn:
            return await parent_rows.complete_where(conn, parent_rows.NOTHING_PENDING, now, None)

    async def complete_closed_parents(self, now: datetime, limit: int = 1000) -> int:
        """Active parents whose open count is down to zero but were left uncompleted (the
        process stopped between a slice's outcome and the completion): the sweeper's pass."""
        async with self.transaction() as conn:
            return await parent_rows.complete_where(conn, parent_rows.NONE_OPEN, now, limit)

    # -- switches ----------------------------------------------------------------------------
    async def switches(self) -> SwitchState:
        try:
            async with self.engine.connect() as conn:
                return await switches.read(conn)
        except Exception as exc:  # unreadable state is engaged: fail closed
            return SwitchState.fail_closed(f"switch state unreadable: {type(exc).__name__}")

    async def set_switch(
        self, name: str, engaged: bool, now: datetime, *, reason: str | None,
        operator: str | None, automatic: bool = False, extra: list[OutboxMessage] | None = None,
    ) -> bool:
        async with self.transaction() as conn:
            changed = await switches.set_switch(
                conn, name, engaged, now, reason=reason, operator=operator, automatic=automatic
            )
            await outbox.write(conn, extra or [], now)
            return changed

    # -- outbox ------------------------------------------------------------------------------
    async def outbox_fetch(self, limit: int) -> list[tuple[int, OutboxMessage]]:
        async with self.engine.connect() as conn:
            return await outbox.fetch(conn, limit)

    async def outbox_remove(self, ids: list[int]) -> None:
        async with self.transaction() as conn:
            await outbox.remove(conn, ids)

    async def outbox_backlog(self) -> int:
        async with self.engine.connect() as conn:
            return await outbox.backlog(conn)

    async def write_messages(self, messages: list[OutboxMessage], now: datetime) -> None:
        async with self.transaction() as conn:
            await outbox.write(conn, messages, now)

    async def apply_intake(
        self, items: list[IntakeItem], now: datetime, requests_queue: str,
        redate: Redate | None = None, screening: Screening | None = None,
    ) -> list[IntakeResult]:
        async with self.transaction() as conn:
            return await intake.apply_intake(conn, items, now, requests_queue, redate,
                                             screening)

    # -- risk limits and access ----------------------------------------------------------------
    async def effective_limits(self, strategies: Iterable[str]) -> dict[str, Limits]:
        """The limits that apply to each strategy now (a plain read: intake decides on the
        ones it reads again under the strategies' lock)."""
        async with self.engine.connect() as conn:
            return await limit_rows.effective_for(conn, strategies)

    async def limit_rows(self) -> dict[str, Limits]:
        async with self.engine.connect() as conn:
            return await limit_rows.all_rows(conn)

    async def set_limits(self, strategy: str, changes: Mapping[str, Any], *, by: str,
                         reason: str | None, now: datetime) -> tuple[Limits | None, Limits]:
        async with self.transaction() as conn:
            return await limit_rows.set_limits(conn, strategy, changes, by=by, reason=reason,
                                               now=now)

    async def grant_of(self, user: str) -> Grant | None:
        async with self.engine.connect() as conn:
            return await grant_rows.of_user(conn, user)

    async def all_grants(self) -> list[Grant]:
        async with self.engine.connect() as conn:
            return await grant_rows.all_grants(conn)

    async def set_grant(self, grant: Grant, *, by: str, reason: str | None,
                        now: datetime) -> Grant | None:
        async with self.transaction() as conn:
            return await grant_rows.set_grant(conn, grant, by=by, reason=reason, now=now)

    async def audit_history(self, kind: str, subject: str | None = None) -> list[AuditRow]:
        async with self.engine.connect() as conn:
            return await audit.history(conn, kind, subject)

    async def slice_turn(self, strategy: str, client_order_id: str, now: datetime,
                         decide: Callable[[list[datetime]], datetime | None]) -> datetime | None:
        """The slice's turn under max_slices_per_minute: `decide` picks it from the
        strategy's recent turns (None: no turn), kept in the same transaction, under the
        strategy's lock, so two slices never take the same place."""
        async with self.transaction() as conn:
            await limit_rows.lock(conn, [strategy])
            at = decide(await turns.recent(conn, strategy, now))
            if at is not None:
                await turns.take(conn, strategy, client_order_id, at)
            return at

    async def pending_parent(self, parent_id: str) -> PendingParent | None:
        """An active parent with a slice still to fire, for re-arming; None otherwise."""
        async with self.engine.connect() as conn:
            found = await parent_rows.pending_parent(conn, parent_id)
        if found is None:
            return None
        parent, first, due = found
        return PendingParent(parent_id, parent.start_at, parent.interval_seconds,
                             parent.total_slices, first, due)

    async def prune_receipts(self, before: datetime, limit: int = 1000) -> int:
        async with self.transaction() as conn:
            return await intake.prune_receipts(conn, before, limit)

    async def cancel(self, parent_id: str, reason: str | None, now: datetime,
                     *, working_orders: bool = False) -> CancelResult:
        async with self.transaction() as conn:
            return await parent_rows.cancel(conn, parent_id, reason, now,
                                                   working_orders=working_orders)

    # -- fills -------------------------------------------------------------------------------
    async def apply_view(self, view: fills.BrokerView, now: datetime,
                         reason: str | None = None) -> fills.ViewResult:
        """Apply the broker's view of one order (idempotent: see store/fills.py); `reason`:
        why the slice closes, if this view ends it unfilled (else the broker's reason)."""
        async with self.transaction() as conn:
            return await fills.apply_view(conn, view, now, reason)

    async def fills_of(self, parent_id: str) -> list[dict[str, object]]:
        async with self.engine.connect() as conn:
            return await fills.of_parent(conn, parent_id)

    async def submitted_slices(self, *, untouched_since: datetime | None = None,
                               limit: int | None = None) -> list[tuple[SliceRecord, datetime]]:
        """Slices whose order is working at the broker, with their last news (reconciliation's
        list); with `untouched_since`, only those without news since then."""
        async with self.engine.connect() as conn:
            return await slice_rows.submitted(conn, untouched_since, limit)

    async def working_orders(self, limit: int | None = None
                             ) -> list[tuple[ParentRecord, SliceRecord]]:
        """Slices working at the broker, with their parents."""
        async with self.engine.connect() as conn:
            return await slice_rows.submitted_with_parents(conn, limit)

    async def size_claimed(self, parent_id: str, slice_num: int,
                           rule: Callable[[int, int], int], planned_qty: int,
                           now: datetime) -> int | None:
        """Catch-up: the qty a claimed slice sends, decided and written in one transaction
        under its parent's lock (slice_rows.size_claimed); None: no longer submitting."""
        async with self.transaction() as conn:
            return await slice_rows.size_claimed(conn, parent_id, slice_num, rule,
                                                 planned_qty, now)

    # -- broker cancels of a canceled parent's working orders ------------------------------
    async def working_slices(self, parent_id: str) -> list[SliceRecord]:
        async with self.engine.connect() as conn:
            return await slice_rows.working(conn, parent_id)

    async def finish_working(self, parent_id: str, canceled: int, now: datetime) -> bool:
        async with self.transaction() as conn:
            return await parent_rows.finish_working(conn, parent_id, canceled, now)

    async def pending_working(self) -> list[str]:
        async with self.engine.connect() as conn:
            return await parent_rows.pending_working(conn)

    async def landed_after_cancel(self, since: datetime) -> list[SliceRecord]:
        async with self.engine.connect() as conn:
            return await parent_rows.landed_after_cancel(conn, since)

    async def watched_in_flight(self) -> list[str]:
        async with self.engine.connect() as conn:
            return await parent_rows.watched_in_flight(conn)


__all__ = ["CancelResult", "PendingParent", "Store"]
