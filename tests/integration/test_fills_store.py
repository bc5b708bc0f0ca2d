"""Fills applied from the broker's cumulative views, on both databases: exact decimals, a
duplicate, stale or reordered view changes nothing, two concurrent applies of one view write
it once, and a slice ends `filled` or `closed` with its parent's completion and outcome."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
import sqlalchemy

from tests.support.memory_store import MemoryStore
from twap_schemas.common import ExecutionOutcome, ParentStatus, SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.core.states import OPEN
from worker.store import bulk, switches, tables
from worker.store.fills import Applied
from worker.store.tables import parents
from worker.store.repository import Store

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


async def _parent(store: Store, qty: int = 10, slices: int = 2) -> tuple[ParentRecord,
                                                                         list[SliceRecord]]:
    request = SubmitRequest(type="submit", strategy_id="s", symbol="AAPL", side="buy", qty=qty,
                            duration_seconds=slices, interval_seconds=1,
                            request_id=uuid.uuid4().hex)
    parent, records = build_plan(request, now=AT)
    await store.create_parent(parent, records, AT)
    return parent, records


async def _submitted(store: Store, parent: ParentRecord, num: int,
                     view: OrderView | None = None) -> SliceRecord:
    claimed = await store.claim(parent.parent_order_id, num, AT)
    assert claimed is not None
    p, record, _ = claimed
    written = await store.finish(p, record, Outcome(SliceStatus.SUBMITTED, 1, f"b{num}"), AT,
                                 max_failures=5, view=view)
    assert written is not None
    return written


def view(record: SliceRecord, lifecycle: Lifecycle, filled: int, avg: str | None,
         reason: str | None = None, seconds: int = 1) -> OrderView:
    return OrderView(record.client_order_id, f"b{record.slice_num}", lifecycle, filled,
                     None if avg is None else Decimal(avg), AT + timedelta(seconds=seconds),
                     reason)


async def _events(store: Store) -> list[dict[str, Any]]:
    return [json.loads(m.body) for _, m in await store.outbox_fetch(1000)]


async def test_fills_add_up_exactly_and_the_slice_ends_filled(store: Store) -> None:
    """Two cumulative views: the increments, exact; the last one fills the slice."""
    parent, _ = await _parent(store, qty=10, slices=2)
    s0 = await _submitted(store, parent, 0)
    assert (await store.get_parent(parent.parent_order_id)).working_qty == 5  # type: ignore[union-attr]

    first = await store.apply_view(view(s0, Lifecycle.WORKING, 2, "100.10"), AT)
    assert first.applied is Applied.CHANGED and first.fill is not None
    assert (first.fill.qty, first.fill.price) == (2, Decimal("100.1000000000"))
    # 5 shares at an average of 100.16: the last 3 at (500.80 - 200.20) / 3 = 100.20.
    last = await store.apply_view(view(s0, Lifecycle.FILLED, 5, "100.16", seconds=2), AT)
    assert last.applied is Applied.CHANGED and last.ended is SliceStatus.FILLED
    assert last.fill is not None and (last.fill.qty, last.fill.price) == (3, Decimal("100.2"))

    s = (await store.get_slices(parent.parent_order_id))[0]
    assert (s.status, s.filled_qty, s.fill_notional) == (SliceStatus.FILLED, 5,
                                                         Decimal("500.80"))
    p = await store.get_parent(parent.parent_order_id)
    assert p is not None
    assert (p.filled_qty, p.notional, p.working_qty, p.status) == (
        5, Decimal("500.80"), 0, ParentStatus.ACTIVE)
    rows = await store.fills_of(parent.parent_order_id)
    assert [(r["filled_qty"], r["fill_qty"], r["fill_price"]) for r in rows] == [
        (2, 2, Decimal("100.1")), (5, 3, Decimal("100.2"))]
    fills = [e for e in await _events(store) if e["event_type"] == "slice.fill"]
    assert [(e["fill_qty"], e["fill_price"], e["filled_qty"], e["parent_filled_qty"],
             e["parent_avg_fill_price"]) for e in fills] == [
        (2, "100.1000000000", 2, 2, "100.1000000000"),
        (3, "100.2000000000", 5, 5, "100.1600000000")]


async def test_duplicate_stale_and_reordered_views_change_nothing(store: Store) -> None:
    parent, _ = await _parent(store)
    s0 = await _submitted(store, parent, 0)
    newer = view(s0, Lifecycle.WORKING, 3, "99.5")
    older = view(s0, Lifecycle.WORKING, 1, "99")
    assert (await store.apply_view(newer, AT)).applied is Applied.CHANGED
    before = await _events(store)
    for again in (newer, older, newer):  # repeated, then stale (arrived late), then repeated
        assert (await store.apply_view(again, AT)).applied is Applied.UNCHANGED
    assert await _events(store) == before
    s = (await store.get_slices(parent.parent_order_id))[0]
    assert (s.filled_qty, s.fill_notional) == (3, Decimal("298.5"))
    assert len(await store.fills_of(parent.parent_order_id)) == 1


async def test_two_concurrent_applies_of_one_view_write_it_once(store: Store) -> None:
    parent, _ = await _parent(store)
    s0 = await _submitted(store, parent, 0)
    v = view(s0, Lifecycle.FILLED, 5, "12.34")
    results = await asyncio.gather(store.apply_view(v, AT), store.apply_view(v, AT))
    assert sorted(r.applied for r in results) == [Applied.CHANGED, Applied.UNCHANGED]
    p = await store.get_parent(parent.parent_order_id)
    assert p is not None and (p.filled_qty, p.notional, p.working_qty) == (5, Decimal("61.70"), 0)
    kinds = [e["event_type"] for e in await _events(store)]
    assert (kinds.count("slice.fill"), kinds.count("slice.filled")) == (1, 1)


async def test_closed_slices_complete_the_parent_with_its_outcome(store: Store) -> None:
    """Slice 0 filled, slice 1 closed with 1 of 5: completed, partial, 6 of 10 at 50.5."""
    parent, _ = await _parent(store)
    s0 = await _submitted(store, parent, 0, view=None)
    await store.apply_view(view(s0, Lifecycle.FILLED, 5, "50"), AT)
    s1 = await _submitted(store, parent, 1)
    result = await store.apply_view(
        view(s1, Lifecycle.CLOSED, 1, "53", reason="canceled at the slice's end"), AT)
    assert result.ended is SliceStatus.CLOSED
    p = await store.get_parent(parent.parent_order_id)
    assert p is not None
    assert (p.status, p.outcome, p.filled_qty, p.working_qty) == (
        ParentStatus.COMPLETED, ExecutionOutcome.PARTIAL, 6, 0)
    events = await _events(store)
    closed = next(e for e in events if e["event_type"] == "slice.closed")
    assert (closed["filled_qty"], closed["unfilled_qty"], closed["avg_fill_price"],
            closed["reason"]) == (1, 4, "53.0000000000", "canceled at the slice's end")
    done = next(e for e in events if e["event_type"] == "parent.completed")
    assert (done["filled_qty"], done["unfilled_qty"], done["avg_fill_price"], done["notional"],
            done["outcome"], done["by_status"]) == (
        6, 4, "50.5000000000", "303", "partial",
        {"filled": {"count": 1, "qty": 5}, "closed": {"count": 1, "qty": 5}})


async def test_a_view_for_a_slice_not_yet_recorded_is_left_for_later(store: Store) -> None:
    """The broker's push can beat the executor's record of `submitted`: the store says so and
    writes nothing; the record with the submit's view then applies it."""
    parent, _ = await _parent(store)
    claimed = await store.claim(parent.parent_order_id, 0, AT)
    assert claimed is not None
    p, record, _ = claimed
    early = view(record, Lifecycle.FILLED, 5, "10")
    assert (await store.apply_view(early, AT)).applied is Applied.SUBMITTING
    assert (await store.get_slices(parent.parent_order_id))[0].filled_qty == 0
    written = await store.finish(p, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"), AT,
                                 max_failures=5, view=early)
    assert written is not None and written.status is SliceStatus.FILLED
    s = (await store.get_slices(parent.parent_order_id))[0]
    assert (s.status, s.filled_qty, s.broker_order_id) == (SliceStatus.FILLED, 5, "b0")
    assert (await store.apply_view(early, AT)).applied is Applied.UNCHANGED


async def test_an_unknown_order_is_reported_unknown(store: Store) -> None:
    ghost = OrderView("nope", "b", Lifecycle.FILLED, 1, Decimal(1), AT)
    assert (await store.apply_view(ghost, AT)).applied is Applied.UNKNOWN


async def test_exact_decimals_that_do_not_terminate(store: Store) -> None:
    """Three shares for 100: the notional stays exact, the average is rounded once."""
    parent, _ = await _parent(store, qty=6, slices=2)
    s0 = await _submitted(store, parent, 0)
    await store.apply_view(view(s0, Lifecycle.WORKING, 1, "33.33"), AT)
    await store.apply_view(view(s0, Lifecycle.FILLED, 3, "33.3333333333"), AT)
    s = (await store.get_slices(parent.parent_order_id))[0]
    assert s.fill_notional == Decimal("99.9999999999")
    p = await store.get_parent(parent.parent_order_id)
    assert p is not None and p.notional == Decimal("99.9999999999")


async def test_a_submit_view_that_cannot_be_applied_keeps_the_submitted_record(
        store: Store) -> None:
    # More filled than the slice's qty: the view is refused, but the slice is at the broker
    # and must be recorded so (else it stays `submitting` and is looked up forever).
    bad: list[int] = []
    store.on_bad_view = lambda: bad.append(1)
    parent, _ = await _parent(store, qty=10, slices=2)
    claimed = await store.claim(parent.parent_order_id, 0, AT)
    assert claimed is not None
    p, record, _ = claimed
    written = await store.finish(p, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"), AT,
                                 max_failures=5, view=view(record, Lifecycle.FILLED, 6, "10"))
    assert written is not None
    assert (written.status, written.filled_qty) == (SliceStatus.SUBMITTED, 0)
    claimed = await store.claim(parent.parent_order_id, 1, AT)
    assert claimed is not None
    p, record1, _ = claimed
    many = await store.finish_many([(p, record1, Outcome(SliceStatus.SUBMITTED, 1, "b1"))], AT,
                                   max_failures=5,
                                   views=[view(record1, Lifecycle.FILLED, 5, None)])
    assert many[0] is not None
    assert (many[0].status, many[0].filled_qty) == (SliceStatus.SUBMITTED, 0)
    stored = await store.get_slices(parent.parent_order_id)
    assert [(s.status, s.filled_qty) for s in stored] == [(SliceStatus.SUBMITTED, 0)] * 2
    assert bad == [1, 1]
    after = await store.get_parent(parent.parent_order_id)
    assert after is not None and (after.filled_qty, after.working_qty) == (0, 10)



async def test_a_bad_submit_view_of_a_group_sent_again_is_reported_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's transaction that fails after its bad view was met (here the breaker's write,
    standing for a deadlock or a dropped connection) writes nothing; the dispatcher sends the
    outcome again and that one commits. The broker's answer was bad once: one report."""
    bad: list[int] = []
    store.on_bad_view = lambda: bad.append(1)
    parent, _ = await _parent(store, qty=10, slices=2)
    claimed = await store.claim(parent.parent_order_id, 0, AT)
    assert claimed is not None
    p, record, _ = claimed
    item = (p, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"))
    beyond = view(record, Lifecycle.FILLED, 6, "10")  # 6 of 5: cannot be right
    real = switches.record_outcomes
    failures = [RuntimeError("deadlock detected")]

    async def failing_once(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        await real(*args, **kwargs)

    monkeypatch.setattr(switches, "record_outcomes", failing_once)
    with pytest.raises(RuntimeError, match="deadlock"):
        await store.finish_many([item], AT, max_failures=5, views=[beyond])
    assert (await store.get_slices(parent.parent_order_id))[0].status is SliceStatus.SUBMITTING
    assert bad == []
    written = await store.finish_many([item], AT, max_failures=5, views=[beyond])
    assert written[0] is not None and written[0].status is SliceStatus.SUBMITTED
    assert bad == [1]

class _Statements:
    """The statements an engine runs, as their first words and table (`UPDATE slices`)."""

    def __init__(self, store: Store) -> None:
        self.seen: list[str] = []
        self._engine = store.engine.sync_engine
        sqlalchemy.event.listen(self._engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        if words[:1] == ["UPDATE"]:
            self.seen.append(f"UPDATE {words[1]}")
        elif words[:2] == ["INSERT", "INTO"]:
            self.seen.append(f"INSERT {words[2]}")

    def close(self) -> list[str]:
        sqlalchemy.event.remove(self._engine, "before_cursor_execute", self._record)
        return self.seen


async def test_a_submit_answered_filled_writes_each_row_once(store: Store) -> None:
    """A market order that comes back filled: `submitted`, its fill and its end are one change
    of the slice's row and one of the parent's (was three of each), with the three events in
    their order and the fill's figures on the parent."""
    parent, _ = await _parent(store, qty=10, slices=2)
    claimed = await store.claim(parent.parent_order_id, 0, AT)
    assert claimed is not None
    p, record, _ = claimed
    statements = _Statements(store)
    written = await store.finish(p, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"), AT,
                                 max_failures=5,
                                 view=view(record, Lifecycle.FILLED, 5, "100.25"))
    seen = statements.close()
    assert written is not None
    assert (written.status, written.filled_qty, written.fill_notional) == (
        SliceStatus.FILLED, 5, Decimal("501.25"))
    assert seen.count("UPDATE slices") == 1
    assert seen.count("UPDATE parents") == 1
    assert seen.count("INSERT outbox") == 1 and seen.count("INSERT fills") == 1
    events = await _events(store)
    assert [e["event_type"] for e in events] == ["slice.submitted", "slice.fill",
                                                 "slice.filled"]
    assert (events[0]["filled_qty"], events[1]["fill_qty"], events[1]["fill_price"],
            events[1]["parent_filled_qty"], events[2]["filled_qty"]) == (
        0, 5, "100.2500000000", 5, 5)
    stored = await store.get_parent(parent.parent_order_id)
    assert stored is not None
    assert (stored.status, stored.filled_qty, stored.notional, stored.working_qty) == (
        ParentStatus.ACTIVE, 5, Decimal("501.25"), 0)
    assert [f["fill_qty"] for f in await store.fills_of(parent.parent_order_id)] == [5]


async def test_one_group_of_submits_answered_filled_completes_the_parent(store: Store) -> None:
    """Both slices of a parent recorded in one group, each answered filled: the parent's fills
    add up in the group's order and it completes after the slices' events."""
    parent, _ = await _parent(store, qty=10, slices=2)
    group = await store.claim_many([(parent.parent_order_id, 0), (parent.parent_order_id, 1)],
                                   AT)
    items = [(group[(parent.parent_order_id, n)][0], group[(parent.parent_order_id, n)][1],
              Outcome(SliceStatus.SUBMITTED, 1, f"b{n}")) for n in (0, 1)]
    written = await store.finish_many(items, AT, max_failures=5, views=[
        view(items[0][1], Lifecycle.FILLED, 5, "10"),
        view(items[1][1], Lifecycle.CLOSED, 2, "11", reason="ioc"),
    ])
    assert [(w.status, w.filled_qty) for w in written if w is not None] == [
        (SliceStatus.FILLED, 5), (SliceStatus.CLOSED, 2)]
    events = await _events(store)
    assert [e["event_type"] for e in events] == [
        "slice.submitted", "slice.fill", "slice.filled",
        "slice.submitted", "slice.fill", "slice.closed", "parent.completed"]
    assert [e["parent_filled_qty"] for e in events if e["event_type"] == "slice.fill"] == [5, 7]
    assert (events[5]["unfilled_qty"], events[5]["reason"]) == (3, "ioc")
    assert (events[6]["filled_qty"], events[6]["notional"], events[6]["outcome"]) == (
        7, "72", "partial")
    stored = await store.get_parent(parent.parent_order_id)
    assert stored is not None
    assert (stored.status, stored.filled_qty, stored.notional, stored.working_qty) == (
        ParentStatus.COMPLETED, 7, Decimal("72"), 0)


async def test_a_view_that_fills_and_ends_the_order_writes_each_row_once(store: Store) -> None:
    """The stream's last view of an order (the rest filled, the order done): one change of the
    slice's row and one of the parent's (was two and two)."""
    parent, _ = await _parent(store, qty=10, slices=2)
    s0 = await _submitted(store, parent, 0)
    await store.apply_view(view(s0, Lifecycle.WORKING, 2, "10"), AT)
    statements = _Statements(store)
    result = await store.apply_view(view(s0, Lifecycle.FILLED, 5, "10.6", seconds=2), AT)
    seen = statements.close()
    assert result.ended is SliceStatus.FILLED and result.fill is not None
    assert (result.fill.qty, result.fill.price) == (3, Decimal("11"))
    assert (seen.count("UPDATE slices"), seen.count("UPDATE parents")) == (1, 1)
    stored = await store.get_parent(parent.parent_order_id)
    assert stored is not None
    assert (stored.status, stored.filled_qty, stored.notional, stored.working_qty) == (
        ParentStatus.ACTIVE, 5, Decimal("53.0"), 0)


def _mixed_group(a: tuple[ParentRecord, list[SliceRecord]],
                 b: tuple[ParentRecord, list[SliceRecord]]
                 ) -> tuple[list[tuple[str, int]], list[Outcome], list[Any]]:
    """Two parents' slices in one group, out of parent order: an IOC partly filled, a failure,
    a working order with a fill, an IOC ended unfilled (its parent's last open slice) and an
    expiry. Views are built from the plan's records (what a claim returns but the status)."""
    pa, ra = a
    pb, rb = b
    keys = [(pb.parent_order_id, 2), (pa.parent_order_id, 1), (pb.parent_order_id, 0),
            (pa.parent_order_id, 0), (pb.parent_order_id, 1)]
    outcomes = [Outcome(SliceStatus.SUBMITTED, 1, "x"), Outcome(SliceStatus.FAILED, 3, reason="f"),
                Outcome(SliceStatus.SUBMITTED, 1, "y"), Outcome(SliceStatus.SUBMITTED, 1, "z"),
                Outcome(SliceStatus.EXPIRED, 0, reason="late")]
    views = [view(rb[2], Lifecycle.CLOSED, 1, "7", reason="ioc"), None,
             view(rb[0], Lifecycle.WORKING, 2, "8"), view(ra[0], Lifecycle.CLOSED, 0, None),
             None]
    return keys, outcomes, views


def _said(bodies: list[dict[str, Any]], ids: dict[str, str]) -> list[tuple[Any, ...]]:
    return [(ids[e["parent_order_id"]], e["event_type"], e.get("slice_num"), e.get("reason"),
             e.get("filled_qty"), e.get("parent_filled_qty")) for e in bodies]


async def test_the_memory_store_writes_a_group_with_views_as_the_database_does(
        store: Store) -> None:
    """The runtime's unit tests run on the in-memory store: a group mixing outcomes and
    submit views must give its events in the database's order (each slice's `submitted`, then
    its fill and end, item by item; completions last) with the same reasons and figures."""
    a = await _parent(store, qty=10, slices=2)
    b = await _parent(store, qty=9, slices=3)
    keys, outs, views = _mixed_group(a, b)
    ids = {a[0].parent_order_id: "a", b[0].parent_order_id: "b"}

    claimed = await store.claim_many(keys, AT)
    items = [(*claimed[k][:2], o) for k, o in zip(keys, outs, strict=True)]
    written = await store.finish_many(items, AT, max_failures=5, views=views)
    database = _said(await _events(store), ids)

    memory = MemoryStore()
    for parent, records in (a, b):
        memory.add(parent, records)
    mclaimed = await memory.claim_many(keys, AT)
    mitems = [(*mclaimed[k][:2], o) for k, o in zip(keys, outs, strict=True)]
    mwritten = await memory.finish_many(mitems, AT, max_failures=5, views=views)
    in_memory = _said([json.loads(m.body) for m in memory.outbox], ids)

    assert database == [
        ("b", "slice.submitted", 2, None, 0, None), ("b", "slice.fill", 2, None, 1, 1),
        ("b", "slice.closed", 2, "ioc", 1, None),
        ("a", "slice.failed", 1, "f", 0, None),
        ("b", "slice.submitted", 0, None, 0, None), ("b", "slice.fill", 0, None, 2, 3),
        ("a", "slice.submitted", 0, None, 0, None),
        ("a", "slice.closed", 0, "ended at the broker before it filled completely", 0, None),
        ("b", "slice.expired", 1, "late", 0, None),
        ("a", "parent.completed", None, None, 0, None)]
    assert in_memory == database
    assert [(w.status, w.filled_qty, w.fill_notional, w.reason) for w in mwritten if w] == [
        (w.status, w.filled_qty, w.fill_notional, w.reason) for w in written if w]
    for parent, _ in (a, b):
        stored = await store.get_parent(parent.parent_order_id)
        held = memory.parents[parent.parent_order_id]
        assert stored is not None
        assert (held.status, held.filled_qty, held.notional, held.working_qty) == (
            stored.status, stored.filled_qty, stored.notional, stored.working_qty)


async def _figures_add_up(store: Store, parent_id: str) -> None:
    """The parent's row says what its slices, its fills rows and its events say."""
    async with store.engine.connect() as conn:
        row = (await conn.execute(sqlalchemy.select(tables.parents).where(
            tables.parents.c.parent_order_id == parent_id))).one()
    records = await store.get_slices(parent_id)
    filled = sum(s.filled_qty for s in records)
    working = sum(s.qty - s.filled_qty for s in records if s.status is SliceStatus.SUBMITTED)
    still_open = sum(1 for s in records if s.status in OPEN)
    assert (row.filled_qty, row.notional, row.working_qty, row.open_slices) == (
        filled, sum((s.fill_notional for s in records), Decimal(0)), working, still_open)
    assert sum(cast(int, f["fill_qty"]) for f in await store.fills_of(parent_id)) == filled
    mine = [e for e in await _events(store) if e["parent_order_id"] == parent_id]
    assert sum(e["fill_qty"] for e in mine if e["event_type"] == "slice.fill") == filled
    done = [e for e in mine if e["event_type"] == "parent.completed"]
    assert len(done) == (row.status == ParentStatus.COMPLETED.value)
    assert not done or mine[-1] is done[0]


async def test_crossing_groups_stream_views_and_a_cancel_keep_every_parent_exact(
        store: Store) -> None:
    """Two groups of outcomes with submit views (each holding slices of the same three
    parents, out of parent order), stream views of those parents' working orders and a cancel
    of one of them, all at once: nothing deadlocks, and every parent's filled qty, notional,
    working qty and open count equal what its slices hold, its fills rows and `slice.fill`
    events add up to it, and a completed parent's `parent.completed` is its last event."""
    rnd = random.Random(13)
    for trial in range(3):
        plans = [await _parent(store, qty=12, slices=4) for _ in range(3)]
        keys = [(p.parent_order_id, n) for p, _ in plans for n in range(4)]
        rnd.shuffle(keys)
        early = [k for k in keys if k[1] < 2]
        claimed = await store.claim_many(early, AT)
        working = await store.finish_many(
            [(*claimed[k][:2], Outcome(SliceStatus.SUBMITTED, 1, "w")) for k in early], AT,
            max_failures=5)
        late = [k for k in keys if k[1] >= 2]
        claimed = await store.claim_many(late, AT)
        statuses = (SliceStatus.SUBMITTED, SliceStatus.SUBMITTED, SliceStatus.FAILED)
        items = [(*claimed[k][:2], Outcome(rnd.choice(statuses), 1, "x", reason="r"))
                 for k in late]

        def answer(record: SliceRecord) -> OrderView:
            filled = rnd.randint(0, 3)  # each slice is 3 shares
            ended = Lifecycle.FILLED if filled == 3 else Lifecycle.CLOSED
            return view(record, rnd.choice([ended, Lifecycle.WORKING]), filled,
                        "10.1" if filled else None)

        half = len(items) // 2
        jobs: list[Any] = [
            store.finish_many(group, AT, max_failures=5, views=[answer(r) for _, r, _ in group])
            for group in (items[:half], items[half:])]
        jobs += [store.apply_view(answer(s), AT) for s in working if s is not None]
        jobs.append(store.cancel(plans[trial][0].parent_order_id, "desk", AT))
        await asyncio.gather(*jobs)
        for parent, _ in plans:
            await _figures_add_up(store, parent.parent_order_id)


async def test_a_large_group_answered_filled_writes_its_fills_in_bulk_exactly(
        store: Store) -> None:
    """More submits answered filled in one group than bulk.BULK_MIN_ROWS: the fills rows and
    events go by the bulk path (COPY on PostgreSQL), each price exact and each parent right."""
    count = bulk.BULK_MIN_ROWS + 4
    plans = [await _parent(store, qty=10, slices=2) for _ in range(count)]
    claimed = await store.claim_many([(p.parent_order_id, 0) for p, _ in plans], AT)
    items = [(*claimed[(p.parent_order_id, 0)][:2], Outcome(SliceStatus.SUBMITTED, 1, "b"))
             for p, _ in plans]
    prices = [Decimal("100.0000000001") + n for n in range(count)]
    written = await store.finish_many(
        items, AT, max_failures=5,
        views=[view(r, Lifecycle.FILLED, 5, str(price))
               for (_, r, _), price in zip(items, prices, strict=True)])
    assert [w.status if w else None for w in written] == [SliceStatus.FILLED] * count
    for (parent, _), price in zip(plans, prices, strict=True):
        rows = await store.fills_of(parent.parent_order_id)
        assert [(r["fill_qty"], r["fill_price"]) for r in rows] == [(5, price)]
        stored = await store.get_parent(parent.parent_order_id)
        assert stored is not None
        assert (stored.filled_qty, stored.notional, stored.working_qty) == (5, price * 5, 0)
    kinds = [e["event_type"] for e in await _events(store)]
    assert kinds == ["slice.submitted", "slice.fill", "slice.filled"] * count


async def test_every_change_of_the_parent_stamps_its_updated_at(store: Store) -> None:
    """An order that ended with nothing new to fill still changes the parent (its working qty
    and open count): `twap status` shows when."""
    parent, _ = await _parent(store, qty=10, slices=2)
    s0 = await _submitted(store, parent, 0)
    later = AT + timedelta(minutes=5)
    await store.apply_view(view(s0, Lifecycle.CLOSED, 0, None), later)
    async with store.engine.connect() as conn:
        stamp = (await conn.execute(
            sqlalchemy.select(parents.c.updated_at)
            .where(parents.c.parent_order_id == parent.parent_order_id))).scalar_one()
    assert stamp == later
