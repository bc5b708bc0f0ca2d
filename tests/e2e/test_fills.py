"""Fills end to end, over real RabbitMQ and each database, on the sim market with fixed prices:
market orders fill at the ask, a limit the market never reaches closes at each slice end with
catch-up in the next slices, partial fills arrive as slice.fill events, a cancel closes the
working orders, and a fill made while the worker was down is applied after its restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.support.harness import Harness, submit_body, worker_settings
from worker.brokers.factory import build_broker
from worker.brokers.sim import SimBroker

# AAPL at 190.25, spread 2 bps: bid 190.23, ask 190.27 (to the cent, never narrower).
PRICES = "AAPL=190.25"
ASK = "190.2700000000"


async def _harness(amqp_url: str, database_url: str, namespace: str,
                   **overrides: Any) -> Harness:
    settings = worker_settings(amqp_url, database_url, namespace, sim_prices=PRICES,
                               **overrides)
    h = Harness(settings, broker=build_broker(settings))
    await h.open()
    return h


@pytest.fixture
async def market(amqp_url: str, database_url: str, namespace: str) -> AsyncIterator[Harness]:
    h = await _harness(amqp_url, database_url, namespace)
    yield h
    await h.close()


@pytest.fixture
async def chunked(amqp_url: str, database_url: str, namespace: str) -> AsyncIterator[Harness]:
    h = await _harness(amqp_url, database_url, namespace, sim_fill_qty=7,
                       sim_fill_interval_ms=20)
    yield h
    await h.close()


async def _accepted(h: Harness, **body: Any) -> str:
    cid = await h.publish(submit_body(**body), reply=True)
    reply = await h.reply_for(cid)
    assert reply["outcome"] == "accepted", reply
    return str(reply["parent_order_id"])


async def _completed(h: Harness, pid: str, within: float = 20) -> dict[str, Any]:
    done = await h.events.wait_for(
        lambda: h.events.of("parent.completed", parent_order_id=pid), within)
    return dict(done[0])


async def test_a_market_twap_fills_every_slice_at_the_ask(market: Harness) -> None:
    """103 shares over 5 slices: every slice filled at the ask, the parent filled, its
    average price the ask and its notional 103 x the ask."""
    await market.start_worker()
    pid = await _accepted(market)
    done = await _completed(market, pid)
    assert (done["outcome"], done["filled_qty"], done["unfilled_qty"]) == ("filled", 103, 0)
    assert done["avg_fill_price"] == ASK
    assert Decimal(done["notional"]) == Decimal("190.27") * 103
    assert done["by_status"] == {"filled": {"count": 5, "qty": 103}}
    filled = market.events.of("slice.filled", parent_order_id=pid)
    assert sorted((e["slice_num"], e["filled_qty"], e["avg_fill_price"]) for e in filled) == [
        (0, 21, ASK), (1, 21, ASK), (2, 21, ASK), (3, 20, ASK), (4, 20, ASK)]
    fills = market.events.of("slice.fill", parent_order_id=pid)
    assert sum(e["fill_qty"] for e in fills) == 103
    await market.stop_worker()


async def test_a_limit_never_reached_closes_each_slice_with_catch_up(market: Harness) -> None:
    """A buy limit under the ask never fills: each slice's order is canceled when the next
    comes due (the last at the parent's end), and each next slice carries the shortfall up to
    twice its plan: 10, 20, 20, 20 sent of 10 planned each; nothing filled: unfilled."""
    await market.start_worker()
    pid = await _accepted(market, qty=40, duration_seconds=4, interval_seconds=1,
                          order_type="limit", limit_price="150")
    done = await _completed(market, pid)
    assert (done["outcome"], done["filled_qty"], done["unfilled_qty"]) == ("unfilled", 0, 40)
    assert done["avg_fill_price"] is None
    submitted = sorted((e["slice_num"], e["qty"])
                       for e in market.events.of("slice.submitted", parent_order_id=pid))
    assert submitted == [(0, 10), (1, 20), (2, 20), (3, 20)]
    closed = sorted((e["slice_num"], e["filled_qty"], e["unfilled_qty"], e["reason"])
                    for e in market.events.of("slice.closed", parent_order_id=pid))
    assert [c[:3] for c in closed] == [(0, 0, 10), (1, 0, 20), (2, 0, 20), (3, 0, 20)]
    assert all(c[3].startswith("slice end") for c in closed[:3]), closed
    assert closed[3][3].startswith(("parent end", "slice end")), closed
    broker = market.broker
    assert isinstance(broker, SimBroker) and broker.open_orders == {}
    await market.stop_worker()


async def test_partial_fills_arrive_as_fill_events_that_sum_to_the_filled_qty(
    chunked: Harness
) -> None:
    """Fills of at most 7 shares every 20 ms: each slice fills in chunks; its slice.fill
    events add up to its filled qty, and the parent's to 30."""
    await chunked.start_worker()
    pid = await _accepted(chunked, qty=30, duration_seconds=2, interval_seconds=1)
    done = await _completed(chunked, pid)
    assert (done["outcome"], done["filled_qty"]) == ("filled", 30)
    fills = chunked.events.of("slice.fill", parent_order_id=pid)
    by_slice: dict[int, list[int]] = {}
    for e in fills:
        by_slice.setdefault(e["slice_num"], []).append(e["fill_qty"])
        assert e["fill_price"] == ASK
    assert {n: sum(q) for n, q in by_slice.items()} == {0: 15, 1: 15}
    # The broker's views are cumulative and the worker applies the newest it has: on a busy
    # machine two chunks can arrive as one increment (7 then 8), never as more than the slice.
    assert all(0 < qty <= 15 for q in by_slice.values() for qty in q), by_slice
    assert any(len(q) >= 2 for q in by_slice.values()), by_slice
    assert max(e["parent_filled_qty"] for e in fills) == 30
    await chunked.stop_worker()


async def test_a_cancel_with_working_orders_closes_them(market: Harness) -> None:
    """A resting limit order canceled with its parent: the broker cancels it, the slice ends
    closed, parent.canceled reports the order canceled and nothing filled."""
    await market.start_worker()
    pid = await _accepted(market, qty=20, duration_seconds=60, interval_seconds=30,
                          order_type="limit", limit_price="150", slice_end="keep")
    await market.events.wait_for(lambda: market.events.of("slice.submitted",
                                                          parent_order_id=pid))
    cid = await market.publish({"type": "cancel", "parent_order_id": pid, "reason": "enough",
                                "cancel_working_orders": True}, reply=True)
    await market.reply_for(cid)
    canceled = await market.events.wait_for(
        lambda: market.events.of("parent.canceled", parent_order_id=pid))
    assert (canceled[0]["working_orders_canceled"], canceled[0]["filled_qty"]) == (1, 0)
    closed = await market.events.wait_for(
        lambda: market.events.of("slice.closed", parent_order_id=pid))
    assert (closed[0]["slice_num"], closed[0]["unfilled_qty"]) == (0, 10)
    assert "cancel" in closed[0]["reason"]
    await market.stop_worker()


async def test_a_fill_made_while_the_worker_was_down_is_applied_after_its_restart(
    chunked: Harness
) -> None:
    """The worker stops with an order working; the broker fills it meanwhile (the sim keeps
    running in this process); the restarted worker looks every working order up and applies
    the fill: the slice fills and the parent completes filled."""
    broker = chunked.broker
    assert isinstance(broker, SimBroker)
    broker.fill_interval = 60.0  # nothing fills on its own while the worker runs
    await chunked.start_worker()
    pid = await _accepted(chunked, qty=20, duration_seconds=1, interval_seconds=1,
                          slice_end="keep", keep_working_after_end=True)
    first = await chunked.events.wait_for(
        lambda: chunked.events.of("slice.fill", parent_order_id=pid))
    assert first[0]["filled_qty"] == 7  # the first chunk, at the submit
    await chunked.stop_worker()
    # While the worker is down the order fills: the sim's book looks at it again, soon now.
    live = broker._live
    assert live is not None
    live.close()
    live.interval = 0.01
    live._arm("AAPL")
    coid = first[0]["client_order_id"]
    for _ in range(300):
        found = await broker.find(coid)
        if found is not None and found.ended:
            break
        await asyncio.sleep(0.01)
    assert found is not None and (found.filled_qty, found.ended) == (20, True)
    await chunked.start_worker()
    done = await _completed(chunked, pid)
    assert (done["outcome"], done["filled_qty"], done["avg_fill_price"]) == ("filled", 20, ASK)
    fills = chunked.events.of("slice.fill", parent_order_id=pid)
    assert sorted(e["filled_qty"] for e in fills) == [7, 20]  # the rest applied as one fill
    await chunked.stop_worker()
