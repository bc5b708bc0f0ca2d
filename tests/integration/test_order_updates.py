"""The broker's order updates and reconciliation, applied to a real store on both databases:
a view that beats the record of `submitted` is parked and applied right after the record,
even when the record commits between the store's answer and the park; reconciliation finds
what the stream missed, and closes an order the broker does not have."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from twap_schemas.common import OrderType, SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.brokers.base import OrderRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.brokers.sim import SimBroker
from worker.brokers.sim_market import Market
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.observability.metrics import WorkerMetrics
from worker.runtime import reconcile
from worker.runtime.order_updates import OrderUpdates
from worker.runtime.reconcile import NO_SUCH_ORDER, Reconciler
from worker.runtime.working_orders import PARENT_END, SLICE_END, WorkingOrders
from worker.store.fills import Applied, BrokerView, ViewResult
from worker.store.repository import Store

pytestmark = pytest.mark.integration


def _now() -> datetime:
    return datetime.now(UTC)


async def _claimed(store: Store, qty: int = 5) -> tuple[ParentRecord, SliceRecord]:
    request = SubmitRequest(type="submit", strategy_id="u", symbol="AAPL", side="buy", qty=qty,
                            duration_seconds=1, request_id=uuid.uuid4().hex)
    parent, records = build_plan(request, now=_now())
    await store.create_parent(parent, records, _now())
    claimed = await store.claim(parent.parent_order_id, 0, _now())
    assert claimed is not None
    return claimed[0], claimed[1]


def _filled(record: SliceRecord) -> OrderView:
    return OrderView(record.client_order_id, "b0", Lifecycle.FILLED, record.qty, Decimal("10"),
                     _now())


async def _status(store: Store, parent: ParentRecord) -> SliceRecord:
    return (await store.get_slices(parent.parent_order_id))[0]


async def test_a_view_ahead_of_the_record_is_applied_when_the_slice_lands(store: Store) -> None:
    parent, record = await _claimed(store)
    updates = OrderUpdates(store, SimBroker(), _now, WorkerMetrics())
    result = await updates.apply(_filled(record))
    assert result is not None and result.applied is Applied.SUBMITTING
    await updates.drain()  # its one retry at once: still not recorded
    assert updates.parked == 1 and (await _status(store, parent)).filled_qty == 0
    written = await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"), _now(),
                                 max_failures=5)
    assert written is not None
    updates.recorded(record.client_order_id, written)  # what the executor calls after it
    await updates.drain()
    s = await _status(store, parent)
    assert (s.status, s.filled_qty, updates.parked) == (SliceStatus.FILLED, 5, 0)
    metrics = updates.metrics.registry
    assert metrics.get_sample_value("twap_fills_total") == 1
    assert metrics.get_sample_value("twap_filled_shares_total") == 5


class CountingApplies(Store):
    applies = 0

    async def apply_view(self, view: BrokerView, now: datetime,
                         reason: str | None = None) -> ViewResult:
        self.applies += 1
        return await super().apply_view(view, now, reason)


async def test_a_view_of_an_order_being_sent_waits_and_costs_nothing_the_record_applied(
    database_url: str,
) -> None:
    """The sim pushes a market order's fill as it returns it: while the executor is sending
    and recording (`sending` .. `recorded`), the view is parked without a store call; the
    record applied the same view (filled 5), so it is dropped: no apply at all."""
    store = CountingApplies(Store.from_url(database_url).engine)
    try:
        parent, record = await _claimed(store)
        updates = OrderUpdates(store, SimBroker(), _now, WorkerMetrics())
        updates.sending(record.client_order_id)
        assert await updates.apply(_filled(record)) is None
        assert (store.applies, updates.parked) == (0, 1)
        written = await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"),
                                     _now(), max_failures=5, view=_filled(record))
        assert written is not None and written.status is SliceStatus.FILLED
        updates.recorded(record.client_order_id, written)
        await updates.drain()
        assert (store.applies, updates.parked) == (0, 0)
    finally:
        await store.close()


async def test_a_parked_view_that_says_more_than_the_record_is_applied_after_it(
    database_url: str,
) -> None:
    """The record wrote `submitted` with nothing filled; the parked view (filled 5, ended)
    says more: it is applied once the executor is done, and the slice ends filled."""
    store = CountingApplies(Store.from_url(database_url).engine)
    try:
        parent, record = await _claimed(store)
        updates = OrderUpdates(store, SimBroker(), _now, WorkerMetrics())
        updates.sending(record.client_order_id)
        assert await updates.apply(_filled(record)) is None
        written = await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"),
                                     _now(), max_failures=5)
        updates.recorded(record.client_order_id, written)
        await updates.drain()
        s = await _status(store, parent)
        assert (s.status, s.filled_qty, store.applies, updates.parked) == (
            SliceStatus.FILLED, 5, 1, 0)
    finally:
        await store.close()


class RecordLandsMeanwhile(Store):
    """The record of `submitted` commits right after the store answered SUBMITTING (and its
    `landed` found nothing parked yet): the window the immediate retry covers."""

    record: tuple[ParentRecord, SliceRecord] | None = None

    async def apply_view(self, view: BrokerView, now: datetime,
                         reason: str | None = None) -> ViewResult:
        result = await super().apply_view(view, now, reason)
        if result.applied is Applied.SUBMITTING and self.record is not None:
            parent, record = self.record
            self.record = None
            await self.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"), now,
                              max_failures=5)
        return result


async def test_a_record_that_commits_between_the_answer_and_the_park(
    database_url: str
) -> None:
    store = RecordLandsMeanwhile(Store.from_url(database_url).engine)
    try:
        parent, record = await _claimed(store)
        store.record = (parent, record)
        updates = OrderUpdates(store, SimBroker(), _now, WorkerMetrics())
        result = await updates.apply(_filled(record))
        assert result is not None and result.applied is Applied.SUBMITTING
        await updates.drain()
        s = await _status(store, parent)
        assert (s.status, s.filled_qty, updates.parked) == (SliceStatus.FILLED, 5, 0)
    finally:
        await store.close()


async def test_reconciliation_applies_what_the_stream_missed(store: Store) -> None:
    """A resting order canceled at the broker by someone else, and one the broker lost: one
    pass closes both slices, with the broker's reason and 'no such order'."""
    broker = SimBroker(market=Market(prices={"AAPL": Decimal("100")}))
    slices = []
    for _ in range(2):
        parent, record = await _claimed(store)
        view = await broker.submit(OrderRequest(record.client_order_id, "AAPL", parent.side,
                                                record.qty, OrderType.LIMIT,
                                                limit_price=Decimal("50")))
        await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1,
                                                   view.broker_order_id), _now(),
                           max_failures=5, view=view)
        slices.append((parent, record, view))
    (p0, _, v0), (p1, r1, _) = slices
    assert await broker.cancel(v0.broker_order_id)  # not through the worker: no update seen
    metrics = WorkerMetrics()
    updates = OrderUpdates(store, broker, _now, metrics)
    lost = SimBroker()  # a broker that never saw the second order
    reconciler = Reconciler(store, _Either(broker, lost, r1.client_order_id), _now, metrics,
                            updates, every=30)
    assert await reconciler.reconcile() >= 2
    first, second = await _status(store, p0), await _status(store, p1)
    assert (first.status, first.reason) == (SliceStatus.CLOSED,
                                            "canceled at the worker's request")
    # One "not found" is not enough to close a slice: the second pass's answer is.
    assert (second.status, second.reason) == (SliceStatus.SUBMITTED, None)
    assert await reconciler.reconcile() >= 1
    second = await _status(store, p1)
    assert (second.status, second.reason) == (SliceStatus.CLOSED, NO_SUCH_ORDER)
    assert metrics.registry.get_sample_value("twap_working_orders") is not None


class _Either(SimBroker):
    """find() answers from `lost` for one order, from `broker` for the others."""

    def __init__(self, broker: SimBroker, lost: SimBroker, lost_id: str) -> None:
        super().__init__()
        self._broker, self._lost, self._lost_id = broker, lost, lost_id

    async def find(self, client_order_id: str) -> OrderView | None:
        source = self._lost if client_order_id == self._lost_id else self._broker
        return await source.find(client_order_id)


async def test_the_stream_is_consumed_and_a_resync_asks_for_reconciliation(
    store: Store
) -> None:
    """run(): the first item (Resync) calls on_resync; a pushed fill is applied."""
    broker = SimBroker(market=Market(prices={"AAPL": Decimal("100")}), fill_qty=2,
                       fill_interval=0.01)
    resyncs: list[int] = []
    updates = OrderUpdates(store, broker, _now, WorkerMetrics(),
                           on_resync=lambda: resyncs.append(1))
    stopping = asyncio.Event()
    task = asyncio.create_task(updates.run(stopping))
    parent, record = await _claimed(store, qty=5)
    view = await broker.submit(OrderRequest(record.client_order_id, "AAPL", parent.side,
                                            record.qty))
    await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1, view.broker_order_id),
                       _now(), max_failures=5, view=view)
    for _ in range(300):
        if (await _status(store, parent)).status is SliceStatus.FILLED:
            break
        await asyncio.sleep(0.01)
    s = await _status(store, parent)
    assert (s.status, s.filled_qty, s.fill_notional) == (SliceStatus.FILLED, 5,
                                                         Decimal("500.05"))
    assert resyncs == [1]
    stopping.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class FillsFirst(SimBroker):
    """A cancel that loses the race: the market reaches the order's limit just before the
    cancel arrives, the order fills, and the cancel finds nothing open."""

    async def cancel(self, broker_order_id: str) -> bool:
        self.market.prices = {"AAPL": Decimal("40")}
        await asyncio.sleep(0.1)  # a few looks at the market (every 10 ms): it fills
        return await super().cancel(broker_order_id)


async def test_a_cancel_that_loses_the_race_with_a_fill_ends_filled(store: Store) -> None:
    broker = FillsFirst(market=Market(prices={"AAPL": Decimal("100")}), fill_interval=0.01)
    parent, record = await _claimed(store)
    view = await broker.submit(OrderRequest(record.client_order_id, "AAPL", parent.side,
                                            record.qty, OrderType.LIMIT,
                                            limit_price=Decimal("50")))
    assert view.lifecycle is Lifecycle.WORKING
    written = await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1,
                                                         view.broker_order_id),
                                 _now(), max_failures=5, view=view)
    assert written is not None
    updates = OrderUpdates(store, broker, _now, WorkerMetrics())
    working = WorkingOrders(store, broker, _now, updates=updates)
    assert await working.close(written, SLICE_END) is False  # nothing was open to cancel
    s = await _status(store, parent)
    assert (s.status, s.filled_qty, s.reason) == (SliceStatus.FILLED, 5, None)
    assert s.fill_notional == Decimal("200.05")  # 5 at the ask of 40 (40.01)


class HeldCancel(SimBroker):
    """A cancel held until the test lets it go, so a second closer arrives mid-close."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def cancel(self, broker_order_id: str) -> bool:
        self.entered.set()
        await self.go.wait()
        return await super().cancel(broker_order_id)


async def test_a_second_closer_waits_for_the_outcome_of_the_first(store: Store) -> None:
    # The periodic end_due pass starts closing slice 0's order; then slice 1 comes due and the
    # executor's end_earlier asks for the same close. It must wait for that close and read the
    # parent after it, or slice 0's unfilled qty is never caught up.
    broker = HeldCancel(market=Market(prices={"AAPL": Decimal("100")}))
    request = SubmitRequest(type="submit", strategy_id="u", symbol="AAPL", side="buy", qty=10,
                            duration_seconds=2, interval_seconds=1, order_type="limit",
                            limit_price=Decimal("50"), request_id=uuid.uuid4().hex)
    parent, records = build_plan(request, now=_now())
    assert [r.qty for r in records] == [5, 5]
    await store.create_parent(parent, records, _now())
    claimed = await store.claim(parent.parent_order_id, 0, _now())
    assert claimed is not None
    parent, record = claimed[0], claimed[1]
    view = await broker.submit(OrderRequest(record.client_order_id, "AAPL", parent.side,
                                            record.qty, OrderType.LIMIT,
                                            limit_price=Decimal("50")))
    written = await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1,
                                                         view.broker_order_id),
                                 _now(), max_failures=5, view=view)
    assert written is not None
    working = WorkingOrders(store, broker, _now,
                            updates=OrderUpdates(store, broker, _now, WorkerMetrics()))
    first = asyncio.create_task(working.close(written, PARENT_END))  # the end_due pass
    await broker.entered.wait()
    current = await store.get_parent(parent.parent_order_id)
    assert current is not None and current.working_qty == 5
    second = asyncio.create_task(working.end_earlier(current, 1))  # the executor
    await asyncio.sleep(0.05)
    assert not second.done()  # it waits for the close under way
    broker.go.set()
    after = await second
    assert after.working_qty == 0
    assert after.filled_qty == 0
    assert await first is True
    s = await _status(store, parent)
    assert (s.status, s.filled_qty) == (SliceStatus.CLOSED, 0)


class _Flaky(SimBroker):
    """find() says "no such order" for the orders in `hidden`, answers truly for the others."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.hidden: set[str] = set()

    async def find(self, client_order_id: str) -> OrderView | None:
        if client_order_id in self.hidden:
            return None
        return await super().find(client_order_id)


async def _resting(store: Store, broker: SimBroker) -> tuple[ParentRecord, SliceRecord]:
    parent, record = await _claimed(store)
    view = await broker.submit(OrderRequest(record.client_order_id, "AAPL", parent.side,
                                            record.qty, OrderType.LIMIT,
                                            limit_price=Decimal("50")))
    written = await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1,
                                                         view.broker_order_id),
                                 _now(), max_failures=5, view=view)
    assert written is not None
    return parent, written


async def test_one_not_found_between_two_answers_does_not_close_the_slice(
        store: Store) -> None:
    broker = _Flaky(market=Market(prices={"AAPL": Decimal("100")}))
    parent, record = await _resting(store, broker)
    metrics = WorkerMetrics()
    reconciler = Reconciler(store, broker, _now, metrics,
                            OrderUpdates(store, broker, _now, metrics), every=30)
    broker.hidden.add(record.client_order_id)
    await reconciler.reconcile()
    broker.hidden.clear()
    await reconciler.reconcile()  # found again: the count of "not found" starts over
    broker.hidden.add(record.client_order_id)
    await reconciler.reconcile()
    assert (await _status(store, parent)).status is SliceStatus.SUBMITTED
    await reconciler.reconcile()
    assert (await _status(store, parent)).status is SliceStatus.CLOSED


async def test_a_fill_after_the_slice_ended_is_reported_once_and_not_applied(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    parent, record = await _claimed(store)
    metrics = WorkerMetrics()
    updates = OrderUpdates(store, SimBroker(), _now, metrics)
    await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"), _now(),
                       max_failures=5)
    closed = OrderView(record.client_order_id, "b0", Lifecycle.CLOSED, 0, None, _now(),
                       NO_SUCH_ORDER)
    assert (await updates.apply(closed)).applied is Applied.CHANGED  # type: ignore[union-attr]
    late = OrderView(record.client_order_id, "b0", Lifecycle.FILLED, 5, Decimal("10"), _now())
    caplog.set_level("ERROR", logger="worker.runtime.order_updates")
    for _ in range(3):  # the stream, then every reconciliation pass
        result = await updates.apply(late)
        assert result is not None and result.applied is Applied.AFTER_END
    logged = [r for r in caplog.records if r.getMessage() == "order_updates.fill_after_end"]
    assert len(logged) == 1
    assert metrics.registry.get_sample_value("twap_fills_after_end_total") == 1
    s = await _status(store, parent)
    assert (s.status, s.filled_qty) == (SliceStatus.CLOSED, 0)
    after = await store.get_parent(parent.parent_order_id)
    assert after is not None and after.filled_qty == 0


async def test_a_bad_view_is_logged_and_counted_once_per_distinct_view(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    parent, record = await _claimed(store)
    await store.finish(parent, record, Outcome(SliceStatus.SUBMITTED, 1, "b0"), _now(),
                       max_failures=5)
    metrics = WorkerMetrics()
    updates = OrderUpdates(store, SimBroker(), _now, metrics)
    caplog.set_level("ERROR", logger="worker.runtime.order_updates")
    too_many = OrderView(record.client_order_id, "b0", Lifecycle.WORKING, 9, Decimal("10"),
                         _now())
    no_price = OrderView(record.client_order_id, "b0", Lifecycle.WORKING, 2, None, _now())
    for bad in (too_many, too_many, too_many, no_price, no_price):  # passes repeating them
        assert await updates.apply(bad) is None
    logged = [r for r in caplog.records if r.getMessage() == "order_updates.bad_view"]
    assert len(logged) == 2
    assert metrics.registry.get_sample_value("twap_bad_broker_views_total") == 2
    assert (await _status(store, parent)).filled_qty == 0


class _Counting(SimBroker):
    """Counts lookups; `answers` overrides find() for some orders."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.finds: list[str] = []
        self.answers: dict[str, OrderView] = {}

    async def find(self, client_order_id: str) -> OrderView | None:
        self.finds.append(client_order_id)
        if client_order_id in self.answers:
            return self.answers[client_order_id]
        return await super().find(client_order_id)


class _Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_news_of_any_kind_resets_the_staleness_clock_and_the_lag(store: Store) -> None:
    broker = _Counting(market=Market(prices={"AAPL": Decimal("100")}))
    _, record = await _resting(store, broker)
    written = dict((r.client_order_id, at) for r, at in await store.submitted_slices())[
        record.client_order_id]
    clock = _Clock(written + timedelta(seconds=50))
    metrics = WorkerMetrics()
    updates = OrderUpdates(store, broker, clock, metrics)
    reconciler = Reconciler(store, broker, clock, metrics, updates, every=30)
    # An update that changes nothing (the order still working, nothing filled) is news.
    await updates.apply(OrderView(record.client_order_id, "b0", Lifecycle.WORKING, 0, None,
                                  clock()))
    clock.at = written + timedelta(seconds=60)
    assert await reconciler.reconcile(stale_only=True) == 0  # heard of 10 s ago: not stale
    assert broker.finds == []
    lag = metrics.registry.get_sample_value("twap_reconcile_lag_seconds")
    assert lag == 10.0  # not 60: since the news, not the row's write
    clock.at = written + timedelta(seconds=81)
    assert await reconciler.reconcile(stale_only=True) == 1  # now 31 s without news
    assert broker.finds.count(record.client_order_id) == 1
    assert await reconciler.reconcile(stale_only=True) == 0  # the lookup was news


async def test_a_pass_looks_up_at_most_its_cap_and_a_resync_all(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    broker = _Counting(market=Market(prices={"AAPL": Decimal("100")}))
    ids = {(await _resting(store, broker))[1].client_order_id for _ in range(3)}
    monkeypatch.setattr(reconcile, "LOOKUPS_PER_PASS", 2)
    metrics = WorkerMetrics()
    reconciler = Reconciler(store, broker, _now, metrics,
                            OrderUpdates(store, broker, _now, metrics), every=30)
    assert await reconciler.reconcile() == 2
    broker.finds.clear()
    reconciler.resync()
    for _ in range(200):
        if ids <= set(broker.finds):
            break
        await asyncio.sleep(0.01)
    assert ids <= set(broker.finds)  # every order, in passes of 2
    assert all(broker.finds.count(i) == 1 for i in ids)


async def test_an_unknown_event_has_its_order_looked_up_at_once(store: Store) -> None:
    broker = _Counting(market=Market(prices={"AAPL": Decimal("100")}))
    parent, record = await _resting(store, broker)
    metrics = WorkerMetrics()
    updates = OrderUpdates(store, broker, _now, metrics)
    reconciler = Reconciler(store, broker, _now, metrics, updates, every=30)
    updates.on_unknown = reconciler.look_up
    broker.answers[record.client_order_id] = OrderView(
        record.client_order_id, "b0", Lifecycle.FILLED, 5, Decimal("60"), _now())
    unknown = OrderView(record.client_order_id, "b0", Lifecycle.UNKNOWN, 0, None, _now())
    assert await updates.apply(unknown) is None
    for _ in range(200):
        if (await _status(store, parent)).status is SliceStatus.FILLED:
            break
        await asyncio.sleep(0.01)
    s = await _status(store, parent)
    assert (s.status, s.filled_qty) == (SliceStatus.FILLED, 5)
    assert broker.finds == [record.client_order_id]
