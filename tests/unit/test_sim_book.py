"""The sim book: fills at once when it can, rests otherwise, one timer per symbol, updates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from twap_schemas.common import OrderType, Side, TimeInForce
from worker.brokers.base import OrderRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.brokers.sim_book import SimBook
from worker.brokers.sim_market import Market

# ref 100, spread 2 bps: bid 99.99, ask 100.01
PRICES = {"X": D("100"), "Y": D("50")}


def order(
    cid: str,
    qty: int = 100,
    *,
    side: Side = Side.BUY,
    kind: OrderType = OrderType.MARKET,
    limit: str | None = None,
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    symbol: str = "X",
) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        side=side,
        qty=qty,
        order_type=kind,
        time_in_force=tif,
        limit_price=D(limit) if limit else None,
        stop_price=D(stop) if stop else None,
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def book(**kwargs: object) -> tuple[SimBook, list[OrderView]]:
    ended: list[OrderView] = []
    b = SimBook(Market(prices=dict(PRICES)), on_end=ended.append, **kwargs)  # type: ignore[arg-type]
    return b, ended


async def test_market_buy_fills_whole_at_the_ask() -> None:
    """A market buy of 100 fills at once at 100.01 and is not kept open."""
    b, ended = book()
    view = b.place(order("a"), "b-a")
    assert (view.lifecycle, view.filled_qty, view.avg_fill_price) == (
        Lifecycle.FILLED,
        100,
        D("100.0100000000"),
    )
    assert ended == [view]
    assert len(b) == 0 and b.view("a") is None


async def test_limit_out_of_the_market_rests_then_cancels() -> None:
    """A buy limited at 99 rests (working, nothing filled); cancel closes it with 0 filled."""
    b, ended = book()
    view = b.place(order("a", kind=OrderType.LIMIT, limit="99"), "b-a")
    assert (view.lifecycle, view.filled_qty, view.avg_fill_price) == (Lifecycle.WORKING, 0, None)
    assert b.view("a") is not None
    closed = b.cancel("a", "slice end")
    assert closed is not None
    assert (closed.lifecycle, closed.filled_qty, closed.reason) == (
        Lifecycle.CLOSED,
        0,
        "slice end",
    )
    assert ended == [closed]
    assert b.cancel("a") is None  # no longer open
    b.close()


async def test_chunks_fill_one_per_interval_and_stream_each_fill() -> None:
    """Chunk 30 of 100: 30 at once, then 60, 90 and the final 100 on the timer, all at the ask."""
    b, ended = book(chunk=30, interval=0.001)
    updates = b.updates()
    first = b.place(order("a"), "b-a")
    assert (first.lifecycle, first.filled_qty) == (Lifecycle.WORKING, 30)
    seen = [await asyncio.wait_for(updates.__anext__(), 5) for _ in range(3)]
    assert [(v.lifecycle, v.filled_qty) for v in seen] == [
        (Lifecycle.WORKING, 60),
        (Lifecycle.WORKING, 90),
        (Lifecycle.FILLED, 100),
    ]
    assert seen[-1].avg_fill_price == D("100.0100000000")
    assert ended == [seen[-1]]
    await updates.aclose()


async def test_first_fill_of_a_chunked_order_is_published_too() -> None:
    """A subscriber sees the fill made on the first look, not only the later ones."""
    b, _ = book(chunk=30, interval=60)
    updates = b.updates()
    waiting = asyncio.ensure_future(updates.__anext__())
    await asyncio.sleep(0)
    b.place(order("a"), "b-a")
    got = await asyncio.wait_for(waiting, 5)
    assert (got.lifecycle, got.filled_qty) == (Lifecycle.WORKING, 30)
    b.close()
    await updates.aclose()


async def test_one_timer_per_symbol_however_many_orders_rest() -> None:
    """Fifty resting orders on X and one on Y arm exactly two timers."""
    b, _ = book()
    for i in range(50):
        b.place(order(f"x{i}", kind=OrderType.LIMIT, limit="90"), f"b-x{i}")
    b.place(order("y", kind=OrderType.LIMIT, limit="40", symbol="Y"), "b-y")
    assert len(b) == 51
    assert sorted(b._timers) == ["X", "Y"]
    b.close()


async def test_resting_limit_fills_when_the_price_comes_to_it() -> None:
    """A buy at 95 rests; the reference falls to 94.9; the next look fills it at the ask, 94.91."""
    market = Market(prices={"X": D("100")})
    b = SimBook(market, interval=0.001)
    updates = b.updates()
    b.place(order("a", kind=OrderType.LIMIT, limit="95"), "b-a")
    market.prices = {"X": D("94.90")}  # ask: 94.90949 rounded up, 94.91
    got = await asyncio.wait_for(updates.__anext__(), 5)
    assert (got.lifecycle, got.filled_qty, got.avg_fill_price) == (
        Lifecycle.FILLED,
        100,
        D("94.9100000000"),
    )
    await updates.aclose()


async def test_stop_triggers_when_the_ask_rises_to_it() -> None:
    """A stop buy at 101 waits; the ask moves to 101.01 and it fills as a market order."""
    market = Market(prices={"X": D("100")})
    b = SimBook(market, interval=0.001)
    updates = b.updates()
    assert (
        b.place(order("a", kind=OrderType.STOP, stop="101"), "b-a").lifecycle is Lifecycle.WORKING
    )
    market.prices = {"X": D("101")}  # ask 101.02 >= 101
    got = await asyncio.wait_for(updates.__anext__(), 5)
    assert (got.lifecycle, got.avg_fill_price) == (Lifecycle.FILLED, D("101.0200000000"))
    await updates.aclose()


async def test_ioc_fills_a_chunk_and_closes_the_rest() -> None:
    """ioc with chunk 30: 30 filled, the order closes with its reason; nothing rests."""
    b, ended = book(chunk=30)
    view = b.place(order("a", tif=TimeInForce.IOC), "b-a")
    assert (view.lifecycle, view.filled_qty) == (Lifecycle.CLOSED, 30)
    assert view.reason == "immediate or cancel, the rest could not fill at once"
    assert len(b) == 0 and ended == [view]


async def test_fok_that_cannot_fill_whole_closes_unfilled() -> None:
    """fok with chunk 30 of 100 cannot fill at once: closed with nothing filled."""
    b, _ = book(chunk=30)
    view = b.place(order("a", tif=TimeInForce.FOK), "b-a")
    assert (view.lifecycle, view.filled_qty) == (Lifecycle.CLOSED, 0)


async def test_day_order_expires_at_the_end_of_its_utc_day() -> None:
    """A resting day order placed at 23:59 closes as expired on the first look after midnight."""
    clock = Clock()
    clock.now = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    b = SimBook(Market(prices=dict(PRICES)), clock=clock, interval=0.001)
    updates = b.updates()
    b.place(order("a", kind=OrderType.LIMIT, limit="90"), "b-a")
    clock.now += timedelta(minutes=1)
    got = await asyncio.wait_for(updates.__anext__(), 5)
    assert (got.lifecycle, got.reason) == (Lifecycle.CLOSED, "expired at the broker (day order)")
    await updates.aclose()


async def test_gtc_order_does_not_expire() -> None:
    """A gtc order placed at 23:59 is still working the next day."""
    clock = Clock()
    clock.now = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    b = SimBook(Market(prices=dict(PRICES)), clock=clock, interval=0.001)
    b.place(order("a", kind=OrderType.LIMIT, limit="90", tif=TimeInForce.GTC), "b-a")
    clock.now += timedelta(days=2)
    await asyncio.sleep(0.02)
    view = b.view("a")
    assert view is not None and view.lifecycle is Lifecycle.WORKING
    b.close()


async def test_sell_side_fills_at_the_bid() -> None:
    """A market sell fills at 99.99."""
    b, _ = book()
    view = b.place(order("a", side=Side.SELL), "b-a")
    assert view.avg_fill_price == D("99.9900000000")
