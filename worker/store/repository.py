"""`Store`: the database as the rest of the worker sees it. One method, one transaction."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core.guards import GuardState
from worker.core.intake import IntakeItem
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord, SwitchState
from worker.store import (
    cancel_ops,
    intake_ops,
    operator_reads,
    outbox_ops,
    slice_ops,
    switch_ops,
)
from worker.store.cancel_ops import CancelResult
from worker.store.engine import make_engine
from worker.store.intake_ops import IntakeResult, Redate
from worker.store.rows import to_parent
from worker.store.slice_ops import SLICE_WITH_PARENT, split_row
from worker.store.tables import parents, slices, status_is

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
        # One statement needs no BEGIN/COMMIT round trips on PostgreSQL; SQLite keeps its
        # BEGIN IMMEDIATE (the engine's begin hook) either way.
        self._single = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> Store:
        return cls(make_engine(url, pool_size=pool_size))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    # -- the operations the original design named -------------------------------------------
    async def create_parent(
        self, parent: ParentRecord, slice_records: list[SliceRecord], now: datetime,
        messages: list[OutboxMessage] | None = None,
    ) -> None:
        async with self.transaction() as conn:
            await intake_ops.insert_parents(conn, [(parent, slice_records)], now)
            await slice_ops.write_outbox(conn, messages or [], now)

    async def get_parent(self, parent_id: str) -> ParentRecord | None:
        async with self.engine.connect() as conn:
            return await cancel_ops.get_parent(conn, parent_id)

    async def get_slices(self, parent_id: str) -> list[SliceRecord]:
        async with self.engine.connect() as conn:
            return await intake_ops.get_slices(conn, parent_id)

    async def cancel_pending(self, parent_id: str, reason: str | None, now: datetime) -> int:
        async with self.transaction() as conn:
            return len((await cancel_ops.cancel_pending(conn, parent_id, reason, now)).canceled)

    # -- execution ---------------------------------------------------------------------------
    async def claim(
        self, parent_id: str, slice_num: int, now: datetime
    ) -> tuple[ParentRecord, SliceRecord, SwitchState] | None:
        async with self._single.begin() as conn:
            return await slice_ops.claim(conn, parent_id, slice_num, now)

    async def guard_state(self, parent_id: str, slice_num: int) -> GuardState | None:
        """Parent, slice and switches as they are now: the read right before a send."""
        async with self.engine.connect() as conn:
            return await slice_ops.guard_state(conn, parent_id, slice_num)

    async def note_claimed(self, parent_id: str, slice_num: int, reason: str,
                           now: datetime) -> bool:
        """Say why a `submitting` slice is still unsettled (shown by `twap status`)."""
        async with self._single.begin() as conn:
            return await slice_ops.note_claimed(conn, parent_id, slice_num, reason, now)

    async def finish(
        self,
        parent: ParentRecord,
        record: SliceRecord,
        new: SliceStatus,
        now: datetime,
        *,
        max_failures: int,
        reason: str | None = None,
        broker_order_id: str | None = None,
        attempts: int | None = None,
        sent_at: datetime | None = None,
    ) -> SliceRecord | None:
        if self.dialect == "postgresql" and new is not SliceStatus.FAILED:
            async with self._single.begin() as conn:
                updated, last = await slice_ops.finish_alone(
                    conn, parent, record, new, now, reason=reason,
                    broker_order_id=broker_order_id, attempts=attempts, sent_at=sent_at,
                )
            if last:
                try:
                    async with self._single.begin() as conn:
                        await slice_ops.complete_alone(conn, parent, now)
                except Exception as exc:  # the outcome is written; the sweeper completes it
                    log.warning("parent.completion_deferred", extra={
                        "parent_order_id": parent.parent_order_id, "error": repr(exc)[:200]})
            return updated
        async with self.transaction() as conn:
            return await slice_ops.finish(
                conn, parent, record, new, now, max_failures=max_failures, reason=reason,
                broker_order_id=broker_order_id, attempts=attempts, sent_at=sent_at,
            )

    async def expire_overdue(self, now: datetime, grace: timedelta, limit: int = 1000) -> int:
        """Scheduled slices missed beyond the grace → expired, with events; returns how many."""
        cutoff = now - grace
        async with self.transaction() as conn:
            rows = (
                await conn.execute(
                    SLICE_WITH_PARENT
                    .where(status_is(SliceStatus.SCHEDULED.value))
                    .where(slices.c.scheduled_time < cutoff)
                    .order_by(slices.c.scheduled_time)
                    .limit(limit)
                )
            ).all()
            expired = 0
            for row in rows:
                parent, record = split_row(row)
                done = await slice_ops.transition(
                    conn, parent, record, SliceStatus.EXPIRED, now,
                    reason="missed its due time by more than the grace "
                           f"({grace.total_seconds():.0f} s)",
                )
                expired += done is not None
        return expired

    async def claimed_slices(
        self, *, untouched_since: datetime | None = None, limit: int | None = None
    ) -> list[tuple[ParentRecord, SliceRecord]]:
        """Slices left `submitting` (a previous process died with them in its hands); with
        `untouched_since`, only those not written since then (the sweeper's orphans)."""
        query = SLICE_WITH_PARENT.where(status_is(SliceStatus.SUBMITTING.value))
        if untouched_since is not None:
            query = query.where(slices.c.updated_at < untouched_since)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(slices.c.scheduled_time).limit(limit))
            return [split_row(row) for row in rows]

    async def pending_parents(self) -> list[PendingParent]:
        """Every parent with a scheduled slice, with the first one, for re-arming."""
        first = (
            select(
                slices.c.parent_order_id,
                func.min(slices.c.slice_num).label("next_slice"),
                func.min(slices.c.scheduled_time).label("next_due"),
            )
            .where(slices.c.status == SliceStatus.SCHEDULED.value)
            .group_by(slices.c.parent_order_id)
            .subquery()
        )
        query = select(
            parents.c.parent_order_id, parents.c.start_at, parents.c.interval_seconds,
            parents.c.total_slices, first.c.next_slice, first.c.next_due,
        ).join(first, first.c.parent_order_id == parents.c.parent_order_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
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
        pending = select(slices.c.parent_order_id).where(
            slices.c.status.in_([SliceStatus.SCHEDULED.value, SliceStatus.SUBMITTING.value])
        )
        return await self._complete_where(parents.c.parent_order_id.not_in(pending), now=now)

    async def complete_closed_parents(self, now: datetime, limit: int = 1000) -> int:
        """Active parents whose open count is down to zero but were left uncompleted (the
        process stopped between a slice's outcome and the completion): the sweeper's pass."""
        return await self._complete_where(parents.c.open_slices <= 0, now=now, limit=limit)

    async def _complete_where(self, condition: Any, *, now: datetime,
                              limit: int | None = None) -> int:
        query = (select(parents).where(parents.c.status == ParentStatus.ACTIVE.value)
                 .where(condition).limit(limit))
        async with self.transaction() as conn:
            rows = (await conn.execute(query)).all()
            done = 0
            for row in rows:
                done += await slice_ops.maybe_complete(conn, to_parent(row), now)
        return done

    # -- switches ----------------------------------------------------------------------------
    async def switches(self) -> SwitchState:
        try:
            async with self.engine.connect() as conn:
                return await switch_ops.read_switches(conn)
        except Exception as exc:  # unreadable state is engaged: fail closed
            return SwitchState.fail_closed(f"switch state unreadable: {type(exc).__name__}")

    async def set_switch(
        self, name: str, engaged: bool, now: datetime, *, reason: str | None,
        operator: str | None, automatic: bool = False, extra: list[OutboxMessage] | None = None,
    ) -> bool:
        async with self.transaction() as conn:
            changed = await switch_ops.set_switch(
                conn, name, engaged, now, reason=reason, operator=operator, automatic=automatic
            )
            await slice_ops.write_outbox(conn, extra or [], now)
            return changed

    # -- outbox ------------------------------------------------------------------------------
    async def outbox_fetch(self, limit: int) -> list[tuple[int, OutboxMessage]]:
        async with self.engine.connect() as conn:
            return await outbox_ops.fetch(conn, limit)

    async def outbox_remove(self, ids: list[int]) -> None:
        async with self.transaction() as conn:
            await outbox_ops.remove(conn, ids)

    async def outbox_backlog(self) -> int:
        async with self.engine.connect() as conn:
            return await outbox_ops.backlog(conn)

    async def write_messages(self, messages: list[OutboxMessage], now: datetime) -> None:
        async with self.transaction() as conn:
            await slice_ops.write_outbox(conn, messages, now)

    # -- reads for operators -----------------------------------------------------------------
    async def list_parents(
        self, *, active: bool = False, strategy: str | None = None, symbol: str | None = None,
        since: datetime | None = None, limit: int = 50,
    ) -> list[tuple[ParentRecord, dict[str, tuple[int, int]]]]:
        """Parents, newest first, each with (count, qty) per slice status."""
        query = select(parents).order_by(parents.c.created_at.desc()).limit(limit)
        if active:
            query = query.where(parents.c.status == ParentStatus.ACTIVE.value)
        if strategy:
            query = query.where(parents.c.strategy_id == strategy)
        if symbol:
            query = query.where(parents.c.symbol == symbol.upper())
        if since:
            query = query.where(parents.c.created_at >= since)
        async with self.engine.connect() as conn:
            found = [to_parent(row) for row in await conn.execute(query)]
            ids = [p.parent_order_id for p in found]
            tallies: dict[str, dict[str, tuple[int, int]]] = {i: {} for i in ids}
            if ids:
                rows = await conn.execute(
                    select(slices.c.parent_order_id, slices.c.status, func.count(),
                           func.sum(slices.c.qty))
                    .where(slices.c.parent_order_id.in_(ids))
                    .group_by(slices.c.parent_order_id, slices.c.status)
                )
                for pid, status, count, qty in rows:
                    tallies[pid][status] = (int(count), int(qty))
        return [(p, tallies[p.parent_order_id]) for p in found]

    async def switch_details(self) -> dict[str, operator_reads.SwitchDetail]:
        """Both switches with who set them and when; raises when unreadable (no fail-closed
        default here: an operator must see that the state cannot be read)."""
        async with self.engine.connect() as conn:
            return await operator_reads.switch_details(conn)

    async def parent_notes(self, parent_id: str) -> operator_reads.ParentNotes | None:
        async with self.engine.connect() as conn:
            return await operator_reads.parent_notes(conn, parent_id)

    async def parent_ids(self, prefix: str = "", limit: int = 50) -> list[str]:
        """Parent ids starting with `prefix`, newest first (shell completion)."""
        async with self.engine.connect() as conn:
            return await operator_reads.parent_ids(conn, prefix, limit)

    async def apply_intake(
        self, items: list[IntakeItem], now: datetime, requests_queue: str,
        redate: Redate | None = None,
    ) -> list[IntakeResult]:
        async with self.transaction() as conn:
            return await intake_ops.apply_intake(conn, items, now, requests_queue, redate)

    async def pending_parent(self, parent_id: str) -> PendingParent | None:
        """An active parent with a slice still to fire, for re-arming; None otherwise."""
        async with self.engine.connect() as conn:
            found = await intake_ops.pending_parent(conn, parent_id)
        if found is None:
            return None
        parent, first, due = found
        return PendingParent(parent_id, parent.start_at, parent.interval_seconds,
                             parent.total_slices, first, due)

    async def prune_receipts(self, before: datetime, limit: int = 1000) -> int:
        async with self.transaction() as conn:
            return await intake_ops.prune_receipts(conn, before, limit)

    async def cancel(self, parent_id: str, reason: str | None, now: datetime,
                     *, working_orders: bool = False) -> CancelResult:
        async with self.transaction() as conn:
            return await cancel_ops.cancel_pending(conn, parent_id, reason, now,
                                                   working_orders=working_orders)

    # -- broker cancels of a canceled parent's working orders ------------------------------
    async def working_slices(self, parent_id: str) -> list[SliceRecord]:
        async with self.engine.connect() as conn:
            return await cancel_ops.working_slices(conn, parent_id)

    async def finish_working(self, parent_id: str, canceled: int, now: datetime) -> bool:
        async with self.transaction() as conn:
            return await cancel_ops.finish_working(conn, parent_id, canceled, now)

    async def pending_working(self) -> list[str]:
        async with self.engine.connect() as conn:
            return await cancel_ops.pending_working(conn)

    async def landed_after_cancel(self, since: datetime) -> list[SliceRecord]:
        async with self.engine.connect() as conn:
            return await cancel_ops.landed_after_cancel(conn, since)

    async def watched_in_flight(self) -> list[str]:
        async with self.engine.connect() as conn:
            return await cancel_ops.watched_in_flight(conn)


__all__ = ["CancelResult", "PendingParent", "Store"]
