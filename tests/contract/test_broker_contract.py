"""One suite, every adapter: what the executor relies on from any `Broker` (Protocol v2)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.support.alpaca_settings import standin_settings
from tests.support.alpaca_standin import AlpacaStandIn
from twap_schemas.common import OrderType, Side
from worker.brokers.base import Broker, NotSent, OrderRequest
from worker.brokers.factory import build_broker
from worker.brokers.orders import Lifecycle, OrderView, Resync
from worker.core.retry import DuplicateOrder
from worker.settings import Settings

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = pytest.mark.timeout(20)

# The sim: MSFT at 410 with a 2 bps spread, to the cent outward (bid 409.95, ask 410.05),
# whole fills at once.
# The Alpaca stand-in: market orders fill at 100.00; MSFT quotes 409.9 / 410.1.
SIM: dict[str, Any] = {
    "sim_prices": "MSFT=410", "sim_spread_bps": 2, "sim_volatility_bps": 0, "sim_fill_qty": 0,
}
MARKET_FILL_PRICE = {"sim": Decimal("410.05"), "alpaca": Decimal("100.00")}
MSFT_QUOTE = {
    "sim": (Decimal("409.95"), Decimal("410.05")),
    "alpaca": (Decimal("409.9"), Decimal("410.1")),
}
RESTING_LIMIT = Decimal("400")  # far below MSFT: a buy limit there rests


@pytest.fixture(params=["sim", "alpaca"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """The sim broker, and the Alpaca adapter against the local stand-in (and its stream)."""
    if request.param == "sim":
        built = build_broker(Settings(broker="sim", sim_ledger_path=None, **SIM))
    else:
        standin: AlpacaStandIn = request.getfixturevalue("alpaca_standin")
        built = build_broker(standin_settings(standin))
    assert built.name == request.param
    try:
        yield built
    finally:
        await built.close()


def an_order(order_type: OrderType = OrderType.MARKET) -> OrderRequest:
    return OrderRequest(
        client_order_id=uuid.uuid4().hex[:24],
        symbol="MSFT",
        side=Side.BUY,
        qty=3,
        order_type=order_type,
        limit_price=RESTING_LIMIT if order_type is OrderType.LIMIT else None,
    )


async def test_submit_of_a_market_order_returns_its_filled_view(broker: Broker) -> None:
    """submit answers the broker's view: the client_order_id, a broker id, and a market
    order filled at once (3 shares at the broker's price)."""
    order = an_order()
    placed = await broker.submit(order)
    assert isinstance(placed, OrderView)
    assert placed.client_order_id == order.client_order_id
    assert placed.broker_order_id
    assert (placed.lifecycle, placed.filled_qty, placed.avg_fill_price, placed.reason) == (
        Lifecycle.FILLED, 3, MARKET_FILL_PRICE[broker.name], None)
    assert placed.ended
    assert placed.at.utcoffset() == timedelta(0)


async def test_submit_of_a_resting_limit_order_is_working(broker: Broker) -> None:
    """A buy limit far below the market rests: WORKING, nothing filled, no average."""
    placed = await broker.submit(an_order(OrderType.LIMIT))
    assert (placed.lifecycle, placed.filled_qty, placed.avg_fill_price, placed.ended) == (
        Lifecycle.WORKING, 0, None, False)


async def test_repeated_submit_is_a_duplicate(broker: Broker) -> None:
    """A second submit of the same client_order_id raises DuplicateOrder."""
    order = an_order(OrderType.LIMIT)
    await broker.submit(order)
    with pytest.raises(DuplicateOrder):
        await broker.submit(order)


async def test_find_unknown_is_none(broker: Broker) -> None:
    """find of a client_order_id the broker never saw returns None."""
    assert await broker.find(uuid.uuid4().hex[:24]) is None


def essentials(view: OrderView) -> tuple[object, ...]:
    return (view.client_order_id, view.broker_order_id, view.lifecycle, view.filled_qty,
            view.avg_fill_price, view.reason)


async def test_find_returns_the_same_view_as_submit(broker: Broker) -> None:
    """find of a submitted order returns the view submit returned (nothing changed since)."""
    for order_type in (OrderType.LIMIT, OrderType.MARKET):
        order = an_order(order_type)
        placed = await broker.submit(order)
        found = await broker.find(order.client_order_id)
        assert found is not None
        assert essentials(found) == essentials(placed)
        assert found.at >= placed.at


async def test_updates_start_with_resync(broker: Broker) -> None:
    """Every updates() subscription's first item is Resync(), each one on its own."""
    first, second = broker.updates(), broker.updates()
    assert await asyncio.wait_for(anext(first), 10) == Resync()
    assert await asyncio.wait_for(anext(second), 10) == Resync()


async def test_cancel_of_a_resting_order_closes_it_through_updates_and_find(
    broker: Broker,
) -> None:
    """cancel of a resting limit order returns True; its CLOSED view (nothing filled, a
    reason) arrives through updates(), and find shows it CLOSED too."""
    updates = broker.updates()
    assert await asyncio.wait_for(anext(updates), 10) == Resync()
    order = an_order(OrderType.LIMIT)
    placed = await broker.submit(order)
    assert await broker.cancel(placed.broker_order_id) is True

    async def final_view() -> OrderView:
        async for item in updates:
            if isinstance(item, OrderView) and item.broker_order_id == placed.broker_order_id \
                    and item.ended:
                return item
        raise AssertionError("updates() ended")

    closed = await asyncio.wait_for(final_view(), 10)
    assert (closed.client_order_id, closed.lifecycle, closed.filled_qty) == (
        order.client_order_id, Lifecycle.CLOSED, 0)
    assert closed.reason
    found = await broker.find(order.client_order_id)
    assert found is not None
    assert (found.lifecycle, found.filled_qty) == (Lifecycle.CLOSED, 0)


async def test_quote_has_bid_at_or_below_ask(broker: Broker) -> None:
    """quote(MSFT): the broker's bid and ask (bid <= ask) and a reference at their mid."""
    quote = await broker.quote("MSFT")
    bid, ask = MSFT_QUOTE[broker.name]
    assert (quote.symbol, quote.bid, quote.ask) == ("MSFT", bid, ask)
    assert quote.bid is not None and quote.ask is not None and quote.bid <= quote.ask
    assert quote.reference == Decimal("410.0")


async def test_cancel_filled_market_order_is_false(broker: Broker) -> None:
    """cancel of a market order that already filled returns False."""
    placed = await broker.submit(an_order(OrderType.MARKET))
    assert await broker.cancel(placed.broker_order_id) is False


async def test_before_send_that_stops_sends_nothing(broker: Broker) -> None:
    """A before_send guard raising NotSent: the exception comes through and no order exists."""
    order = an_order()

    async def stop() -> None:
        raise NotSent("kill switch engaged")

    with pytest.raises(NotSent, match="kill switch"):
        await broker.submit(order, stop)
    assert await broker.find(order.client_order_id) is None


async def test_before_send_runs_once_before_the_order_is_placed(broker: Broker) -> None:
    """before_send is awaited exactly once, before the broker has the order."""
    order = an_order()
    seen: list[bool] = []

    async def look() -> None:
        seen.append(await broker.find(order.client_order_id) is None)

    await broker.submit(order, look)
    assert seen == [True]
