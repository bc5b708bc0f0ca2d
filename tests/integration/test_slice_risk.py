"""The risk check before every slice, through the executor, on both databases: a slice over a
limit ends blocked_risk with its event and is never sent; without a price it fails closed; over
the rate it waits its turn within the grace and is blocked after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from twap_schemas import RequestContext, SubmitRequest, parse_request
from twap_schemas.common import SliceStatus
from worker.brokers.sim import SimBroker
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.runtime.risk import NoQuotes, QuoteSource, SliceRisk, quotes_of, references
from worker.store.repository import Store

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class FixedQuote:
    reference: Decimal | None


class Quotes:
    """A quote source with set prices; a symbol without one fails like a broker would."""

    def __init__(self, **prices: str | None) -> None:
        self.prices = prices
        self.asked: list[str] = []

    async def quote(self, symbol: str) -> FixedQuote:
        self.asked.append(symbol)
        if symbol not in self.prices:
            raise LookupError(f"no market data for {symbol}")
        price = self.prices[symbol]
        return FixedQuote(Decimal(price) if price is not None else None)


async def planned(store: Store, start: datetime, *, qty: int = 3, slices: int = 3,
                  **extra: object) -> tuple[ParentRecord, list[SliceRecord]]:
    body = {"type": "submit", "strategy_id": "alpha_1", "symbol": "AAPL", "side": "buy",
            "qty": qty, "duration_seconds": slices, "interval_seconds": 1,
            "start_at": start.isoformat(), **extra}
    req = parse_request(json.dumps(body).encode(), RequestContext(now=start))
    assert isinstance(req, SubmitRequest)
    parent, plan = build_plan(req, now=start)
    await store.create_parent(parent, plan, start)
    return parent, plan


def executor(store: Store, broker: SimBroker, quotes: QuoteSource,
             grace: timedelta = timedelta(seconds=60)) -> SliceExecutor:
    clock = lambda: datetime.now(UTC)  # noqa: E731
    return SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0, grace=grace), clock,
                         risk=SliceRisk(store, quotes, clock, quote_timeout=0.5))


async def slice_events(store: Store) -> list[tuple[str, str | None]]:
    out = []
    for _, row in await store.outbox_fetch(100):
        if row.type and row.type.startswith("slice."):
            body = json.loads(row.body)
            out.append((row.type, body.get("reason")))
    return out


NOW = datetime(2026, 12, 7, tzinfo=UTC)


async def test_slice_notional_over_the_limit_is_blocked_and_never_sent(store: Store) -> None:
    start = datetime.now(UTC)
    parent, plan = await planned(store, start, qty=300)
    await store.set_limits("alpha_1", {"max_notional": Decimal(10_000)}, by="alice",
                           reason=None, now=NOW)
    broker = SimBroker()
    await executor(store, broker, Quotes(AAPL="200")).run(parent.parent_order_id, 0,
                                                          plan[0].scheduled_time)
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.BLOCKED_RISK and not broker.orders
    reason = ("qty: slice notional 20,000 (100 x 200) exceeds max_notional 10,000 for "
              "strategy alpha_1")
    assert rows[0].reason == reason
    assert await slice_events(store) == [("slice.blocked_risk", reason)]


async def test_slice_within_the_limits_goes(store: Store) -> None:
    start = datetime.now(UTC)
    parent, plan = await planned(store, start, order_type="limit", limit_price="201")
    await store.set_limits("*", {"max_notional": Decimal(10_000), "price_collar_bps": 100},
                           by="alice", reason=None, now=NOW)
    broker = SimBroker()
    await executor(store, broker, Quotes(AAPL="200")).run(parent.parent_order_id, 0,
                                                          plan[0].scheduled_time)
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.SUBMITTED
    assert list(broker.orders) == [plan[0].client_order_id]


async def test_collar_broken_since_intake_blocks_the_slice(store: Store) -> None:
    start = datetime.now(UTC)
    parent, plan = await planned(store, start, order_type="limit", limit_price="180")
    await store.set_limits("*", {"price_collar_bps": 500}, by="alice", reason=None, now=NOW)
    broker = SimBroker()
    await executor(store, broker, Quotes(AAPL="200")).run(parent.parent_order_id, 0,
                                                          plan[0].scheduled_time)
    assert await slice_events(store) == [("slice.blocked_risk", (
        "limit_price: 180 is 1,000.0 bps from the reference price 200 of AAPL; exceeds "
        "price_collar_bps 500 for strategy alpha_1"))]
    assert not broker.orders


async def test_no_quote_fails_closed(store: Store) -> None:
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    await store.set_limits("*", {"max_notional": Decimal(10**6)}, by="alice", reason=None,
                           now=NOW)
    broker = SimBroker()
    await executor(store, broker, Quotes()).run(parent.parent_order_id, 0,
                                                plan[0].scheduled_time)
    assert await slice_events(store) == [("slice.blocked_risk", (
        "qty: no reference price for AAPL (quote unavailable: no market data for AAPL): "
        "max_notional 1,000,000 for strategy alpha_1 cannot be checked (fail closed)"))]
    assert not broker.orders


async def test_no_limits_ask_for_no_quote(store: Store) -> None:
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    quotes = Quotes()
    broker = SimBroker()
    await executor(store, broker, quotes).run(parent.parent_order_id, 0, plan[0].scheduled_time)
    assert (await store.get_slices(parent.parent_order_id))[0].status is SliceStatus.FILLED
    assert quotes.asked == []


async def test_over_the_rate_waits_its_turn_then_blocks_past_the_grace(store: Store) -> None:
    """Two a minute: the third slice's turn is a minute away; with a 1 s grace it is blocked.
    With turns taken 59.5 s ago it waits half a second, and says how late it went."""
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    await store.set_limits("alpha_1", {"max_slices_per_minute": 2}, by="alice", reason=None,
                           now=NOW)
    broker = SimBroker()
    ex = executor(store, broker, Quotes(), grace=timedelta(seconds=1))
    for num in (0, 1, 2):
        await ex.run(parent.parent_order_id, num, plan[num].scheduled_time)
    rows = await store.get_slices(parent.parent_order_id)
    assert [r.status for r in rows] == [SliceStatus.FILLED, SliceStatus.FILLED,
                                        SliceStatus.BLOCKED_RISK]
    assert rows[2].reason is not None
    assert rows[2].reason.startswith("max_slices_per_minute 2 for strategy alpha_1 reached; "
                                     "its next turn (")

    other, plan2 = await planned(store, datetime.now(UTC), request_id="second")
    await store.set_limits("alpha_1", {"max_slices_per_minute": 4}, by="alice", reason=None,
                           now=NOW)
    assert ex.risk is not None
    ex.risk.limits.forget()  # what the control service does once it applied a limits.set
    # Two more turns as if taken 59.5 s ago: four in the window, the next in ~0.5 s.
    ago = datetime.now(UTC) - timedelta(seconds=59.5)
    for i in range(2):
        await store.slice_turn("alpha_1", f"old{i:021d}", ago, lambda recent: ago)
    await ex.run(other.parent_order_id, 0, plan2[0].scheduled_time)
    (sent, *_) = await store.get_slices(other.parent_order_id)
    assert sent.status is SliceStatus.FILLED
    assert sent.sent_at is not None
    assert sent.sent_at - plan2[0].scheduled_time >= timedelta(seconds=0.4)
    submitted = [json.loads(row.body) for _, row in await store.outbox_fetch(100)
                 if row.type == "slice.submitted"]
    assert submitted[-1]["lateness_ms"] >= 400


async def test_references_fail_closed_with_reasons() -> None:
    quotes = Quotes(AAPL="190.25", MSFT=None)
    found = await references(quotes, ["AAPL", "MSFT", "GME"], within=0.5)
    assert found["AAPL"] == Decimal("190.25")
    assert str(found["MSFT"]) == "NoPrice(reason='the quote has no bid/ask and no last price')"
    assert str(found["GME"]) == "NoPrice(reason='quote unavailable: no market data for GME')"


async def test_a_broker_without_quotes_refuses_every_price() -> None:
    class Quoteless:
        name = "old"

    source = quotes_of(Quoteless())
    assert isinstance(source, NoQuotes)
    found = await references(source, ["AAPL"])
    assert str(found["AAPL"]) == (
        "NoPrice(reason='quote unavailable: the broker old gives no quotes')")


async def test_a_slice_resumed_unsent_is_checked_again(store: Store) -> None:
    """A slice left `submitting` that never reached the broker is risk-checked before the
    resume sends it."""
    start = datetime.now(UTC)
    parent, _ = await planned(store, start)
    assert await store.claim(parent.parent_order_id, 0, start) is not None
    await store.set_limits("*", {"restricted_symbols": ["AAPL"]}, by="alice", reason=None,
                           now=NOW)
    broker = SimBroker()
    ((p, record),) = await store.claimed_slices()
    await executor(store, broker, Quotes()).resume(p, record)
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.BLOCKED_RISK and not broker.orders
    assert rows[0].reason == "symbol: AAPL is in restricted_symbols for strategy alpha_1"
