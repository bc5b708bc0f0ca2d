"""AlpacaBroker.updates(): alpaca-py's real TradingStream, driven by the adapter's supervised
task, against the local trade updates stand-in, with the faults a fill-tracking worker must
survive (a dropped stream, a fill only polling shows, repeated and reordered updates, events
it does not know)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.alpaca_settings import STANDIN_KEY, STANDIN_SECRET, standin_settings
from tests.support.alpaca_standin import AlpacaStandIn
from tests.support.alpaca_stream import TradeStreamStandIn, update
from twap_schemas.common import OrderType, Side
from worker.brokers.alpaca import AlpacaBroker
from worker.brokers.base import OrderRequest
from worker.brokers.factory import build_broker
from worker.brokers.orders import Lifecycle, OrderView, Resync

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

Item = OrderView | Resync


def a_limit_order(qty: int = 100) -> OrderRequest:
    return OrderRequest(
        client_order_id=uuid.uuid4().hex[:24], symbol="AAPL", side=Side.BUY, qty=qty,
        order_type=OrderType.LIMIT, limit_price=Decimal("150.01"),
    )


async def take(updates: AsyncIterator[Item], n: int = 1, within: float = 10.0) -> list[Item]:
    """The next n items. A timeout fails the test (and ends the subscription)."""
    async def collect() -> list[Item]:
        return [await anext(updates) for _ in range(n)]

    return await asyncio.wait_for(collect(), within)


async def views(updates: AsyncIterator[Item], n: int) -> list[OrderView]:
    got = await take(updates, n)
    assert all(isinstance(item, OrderView) for item in got), got
    return [item for item in got if isinstance(item, OrderView)]


def stream_of(standin: AlpacaStandIn) -> TradeStreamStandIn:
    assert standin.stream is not None
    return standin.stream


async def placed_resting(broker: AlpacaBroker, updates: AsyncIterator[Item]) -> OrderView:
    """Submit a resting limit order and read its `new` update off the stream."""
    placed = await broker.submit(a_limit_order())
    (new,) = await views(updates, 1)
    assert (new.client_order_id, new.lifecycle) == (placed.client_order_id, Lifecycle.WORKING)
    return placed


async def test_first_item_is_resync_then_updates_with_exact_cumulative_figures(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """Resync first; then new, partial_fill and fill as OrderViews with the order's cumulative
    filled qty and average, exact decimals, at the update's timestamp."""
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    placed = await placed_resting(alpaca_broker, updates)

    alpaca_standin.fill(placed.broker_order_id, 40, "150.01")
    alpaca_standin.fill(placed.broker_order_id, 60, "149.96")
    partial, filled = await views(updates, 2)
    assert (partial.lifecycle, partial.filled_qty, partial.avg_fill_price) == (
        Lifecycle.WORKING, 40, Decimal("150.01"))
    assert (filled.lifecycle, filled.filled_qty, filled.avg_fill_price, filled.ended) == (
        Lifecycle.FILLED, 100, Decimal("149.98"), True)
    sent = stream_of(alpaca_standin).sent[-1]["data"]["timestamp"]
    assert filled.at == datetime.fromisoformat(sent)
    assert filled.at.tzinfo is UTC
    await updates.aclose()


async def test_dropped_stream_during_fills_reconnects_with_a_resync(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """The stream drops between two fills; the fill made while it was away never comes
    through the stream, a Resync comes after the reconnect, and find() shows the fill."""
    stream = stream_of(alpaca_standin)
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    placed = await placed_resting(alpaca_broker, updates)
    alpaca_standin.fill(placed.broker_order_id, 30, "150")
    (first,) = await views(updates, 1)
    assert first.filled_qty == 30

    stream.drop()
    alpaca_standin.fill(placed.broker_order_id, 20, "151")  # pushed to nobody
    assert await take(updates) == [Resync()]
    assert stream.connections == 2

    found = await alpaca_broker.find(placed.client_order_id)
    assert found is not None
    assert (found.filled_qty, found.avg_fill_price) == (50, Decimal("150.4"))
    alpaca_standin.fill(placed.broker_order_id, 50, "152")
    (after,) = await views(updates, 1)
    assert (after.lifecycle, after.filled_qty, after.avg_fill_price) == (
        Lifecycle.FILLED, 100, Decimal("151.2"))
    await updates.aclose()


async def test_fill_reported_only_through_polling_is_found(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A fill the stream never reports: updates() yields nothing for it (the next item is the
    later cancel), and find() returns the filled figures."""
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    placed = await placed_resting(alpaca_broker, updates)
    stream_of(alpaca_standin).holding = True
    alpaca_standin.fill(placed.broker_order_id, 25, "150.5")
    stream_of(alpaca_standin).holding = False

    assert await alpaca_broker.cancel(placed.broker_order_id) is True
    (canceled,) = await views(updates, 1)
    assert (canceled.lifecycle, canceled.filled_qty, canceled.reason) == (
        Lifecycle.CLOSED, 25, "canceled at the broker")
    found = await alpaca_broker.find(placed.client_order_id)
    assert found is not None
    assert (found.lifecycle, found.filled_qty, found.avg_fill_price) == (
        Lifecycle.CLOSED, 25, Decimal("150.5"))
    await updates.aclose()


async def test_repeated_update_is_passed_on_each_time(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """An update the broker sends twice reaches the consumer twice, identical (applying
    cumulative figures makes the second harmless: the consumer's job)."""
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    placed = await placed_resting(alpaca_broker, updates)
    order = alpaca_standin.fill(placed.broker_order_id, 40, "150", report=False)
    stream_of(alpaca_standin).push("partial_fill", order, price="150", qty="40", repeat=2)
    one, two = await views(updates, 2)
    assert one == two
    assert (one.filled_qty, one.avg_fill_price) == (40, Decimal("150"))
    await updates.aclose()


async def test_updates_out_of_order_are_passed_on_in_the_order_sent(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """The fill sent before the partial fill it follows: both come through in that order,
    each with its own cumulative figures; nothing is reordered or dropped."""
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    placed = await placed_resting(alpaca_broker, updates)
    partial = alpaca_standin.fill(placed.broker_order_id, 70, "150", report=False)
    filled = alpaca_standin.fill(placed.broker_order_id, 30, "151", report=False)
    stream_of(alpaca_standin).push_frames([
        update("fill", filled, price="151", qty="30"),
        update("partial_fill", partial, price="150", qty="70"),
    ])
    later, earlier = await views(updates, 2)
    assert (later.lifecycle, later.filled_qty, later.avg_fill_price) == (
        Lifecycle.FILLED, 100, Decimal("150.3"))
    assert (earlier.lifecycle, earlier.filled_qty, earlier.avg_fill_price) == (
        Lifecycle.WORKING, 70, Decimal("150"))
    await updates.aclose()


@pytest.mark.parametrize(
    ("event", "status", "lifecycle", "reason"),
    [
        ("done_for_day", "done_for_day", Lifecycle.CLOSED, "done for day at the broker"),
        ("expired", "expired", Lifecycle.CLOSED, "expired at the broker"),
        ("replaced", "replaced", Lifecycle.CLOSED, "replaced at the broker by another order"),
        ("rejected", "rejected", Lifecycle.CLOSED,
         "rejected by the broker after it was accepted"),
        ("pending_cancel", "pending_cancel", Lifecycle.WORKING, None),
        ("order_cancel_rejected", "filled", Lifecycle.FILLED, None),
    ],
)
async def test_each_event_through_the_real_stream(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn,
    event: str, status: str, lifecycle: Lifecycle, reason: str | None,
) -> None:
    """The trade events that end or hold an order map to the lifecycle end to end."""
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    placed = await placed_resting(alpaca_broker, updates)
    order = alpaca_standin.fill(placed.broker_order_id, 10, "150", report=False)
    order["status"] = status
    stream_of(alpaca_standin).push(event, order)
    (view,) = await views(updates, 1)
    assert (view.lifecycle, view.filled_qty, view.reason) == (lifecycle, 10, reason)
    await updates.aclose()


async def test_unknown_event_is_logged_once_yielded_unknown_and_the_stream_goes_on(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """An event string nobody documented: an UNKNOWN view (the consumer looks the order up),
    one warning for two such updates, and the next fill still arrives."""
    caplog.set_level(logging.WARNING, logger="worker.brokers.alpaca_stream")
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    placed = await placed_resting(alpaca_broker, updates)
    order = alpaca_standin.orders[placed.broker_order_id]
    stream_of(alpaca_standin).push("margin_called", dict(order), repeat=2)
    alpaca_standin.fill(placed.broker_order_id, 100, "150")
    odd, again, filled = await views(updates, 3)
    assert (odd.lifecycle, odd.client_order_id, odd.filled_qty) == (
        Lifecycle.UNKNOWN, placed.client_order_id, 0)
    assert again == odd
    assert filled.lifecycle is Lifecycle.FILLED
    logged = [r.getMessage() for r in caplog.records if "margin_called" in r.getMessage()]
    assert logged == [
        "broker.stream_unknown_event event=margin_called (the order is looked up)"
    ]
    await updates.aclose()


async def test_unreadable_update_becomes_a_resync_and_the_stream_goes_on(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """An update whose order has no id, and a frame without an event: each a Resync."""
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    placed = await placed_resting(alpaca_broker, updates)
    order = {**alpaca_standin.orders[placed.broker_order_id], "id": None}
    stream = stream_of(alpaca_standin)
    stream.push("fill", order, price="1", qty="1")
    stream.push_frames([{"stream": "trade_updates", "data": {"order": order}}])
    assert await take(updates, 2) == [Resync(), Resync()]
    alpaca_standin.fill(placed.broker_order_id, 100, "150")
    (filled,) = await views(updates, 1)
    assert filled.lifecycle is Lifecycle.FILLED
    await updates.aclose()


async def test_every_subscription_is_independent_and_starts_with_resync(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """Two subscriptions share one connection; each starts with Resync and gets every
    update; the second joining does not reconnect."""
    first = alpaca_broker.updates()
    assert await take(first) == [Resync()]
    second = alpaca_broker.updates()
    assert await take(second) == [Resync()]
    placed = await alpaca_broker.submit(a_limit_order())
    (a,) = await views(first, 1)
    (b,) = await views(second, 1)
    assert a == b and a.broker_order_id == placed.broker_order_id
    assert stream_of(alpaca_standin).connections == 1
    await first.aclose()
    await second.aclose()


async def test_close_ends_every_subscription_promptly(
    alpaca_standin: AlpacaStandIn,
) -> None:
    """close() stops the stream task and ends subscriptions: a waiting reader gets
    StopAsyncIteration within a second, not after a 5-second read."""
    broker = build_broker(standin_settings(alpaca_standin))
    updates = broker.updates()
    assert await take(updates) == [Resync()]
    waiting = asyncio.ensure_future(anext(updates))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await broker.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 2)
    assert time.monotonic() - started < 2
    assert [item async for item in broker.updates()] == []


async def test_refused_credentials_still_start_with_resync_and_retry_with_backoff(
    alpaca_standin: AlpacaStandIn,
) -> None:
    """A stream that refuses the key: the subscription still starts (Resync after the first
    failed attempt), and the adapter keeps trying at growing intervals."""
    stream = stream_of(alpaca_standin)
    broker = AlpacaBroker(
        api_key=SecretStr(STANDIN_KEY), secret_key=SecretStr("not-the-secret"),
        base_url=alpaca_standin.url, stream_url=stream.url,
        timeout_seconds=0.3, stream_wait=0.1, stream_wait_cap=0.4,
    )
    started = time.monotonic()
    try:
        updates = broker.updates()
        assert await take(updates) == [Resync()]
        await _until(lambda: stream.auth_failures >= 4, within=5)
        # Waits 0.1, 0.2, 0.4 between the four attempts: at least 0.7 s.
        assert time.monotonic() - started >= 0.7
        assert broker._updates.connections == 0
    finally:
        await broker.close()


async def test_a_listen_never_confirmed_is_a_failed_attempt(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A server that takes the login but never confirms `listen`: the attempt times out (the
    subscription still starts with its Resync), and once the server confirms again the
    stream listens and brings the next Resync."""
    stream = stream_of(alpaca_standin)
    stream.answer_listen = False
    updates = alpaca_broker.updates()
    assert await take(updates) == [Resync()]
    assert alpaca_broker._updates.connections == 0
    stream.answer_listen = True
    assert await take(updates) == [Resync()]
    assert alpaca_broker._updates.connections == 1
    assert stream.connections >= 2
    placed = await alpaca_broker.submit(a_limit_order())
    (new,) = await views(updates, 1)
    assert new.broker_order_id == placed.broker_order_id
    await updates.aclose()


async def test_credentials_never_logged_by_the_stream(
    alpaca_standin: AlpacaStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """Every log record of a connect, a drop, a reconnect and refused credentials, at DEBUG
    for every logger (the websocket library's included), leaves the key and secret out."""
    caplog.set_level(logging.DEBUG)
    for name in ("websockets", "websockets.client", "alpaca", "worker"):
        caplog.set_level(logging.DEBUG, logger=name)
    broker = build_broker(standin_settings(alpaca_standin))
    stream = stream_of(alpaca_standin)
    try:
        updates = broker.updates()
        assert await take(updates) == [Resync()]
        stream.drop()
        assert await take(updates) == [Resync()]
        stream.secret = "rotated"  # the next authentication is refused
        stream.drop()
        await _until(lambda: stream.auth_failures >= 1)
    finally:
        await broker.close()
    # The stand-in server's own websocket logs show what it received: not the adapter's.
    ours = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    texts = [r.getMessage() for r in ours] + [repr(r.args) for r in ours]
    assert any("broker.stream_lost" in text for text in texts)
    assert any("broker.stream_listening" in text for text in texts)
    for text in texts:
        assert STANDIN_KEY not in text
        assert STANDIN_SECRET not in text


async def _until(predicate: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
