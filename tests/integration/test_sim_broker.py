"""The sim broker keeps open orders in memory and every order in its on-disk book: a repeated
client_order_id is refused for the broker's life and, with a ledger, after a restart."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import tracemalloc
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support import services
from twap_schemas.common import OrderType, Side, TimeInForce
from worker.brokers.base import OrderRequest
from worker.brokers.orders import Lifecycle, OrderView, Resync
from worker.brokers.sim import SimBroker as Sim
from worker.brokers.sim import read_fills, read_ledger
from worker.brokers.sim_market import Market
from worker.core.retry import DuplicateOrder


def an_order(number: int, order_type: OrderType = OrderType.MARKET) -> OrderRequest:
    return OrderRequest(
        client_order_id=f"{number:024x}",
        symbol="AAPL",
        side=Side.BUY,
        qty=10 + number % 7,
        order_type=order_type,
        limit_price=Decimal("150.25") if order_type is OrderType.LIMIT else None,
    )


def SimBroker(**kwargs: object) -> Sim:  # the sim of these tests: AAPL at 190.25
    return Sim(market=Market(prices={"AAPL": Decimal("190.25")}), **kwargs)  # type: ignore[arg-type]


async def test_filled_orders_do_not_stay_in_the_heap() -> None:
    """5,000 filled market orders leave the sim's Python heap (tracemalloc) under 64 KiB larger."""
    broker = SimBroker()
    await broker.submit(an_order(0))  # opens the book: a one-off cost, not per order
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(1, 5_001):
            await broker.submit(an_order(number))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"heap grew {grown / 1024:.0f} KiB over 5,000 filled orders"
    assert broker.open_orders == {}
    await broker.close()


async def test_repeat_of_an_old_filled_order_is_refused_and_found() -> None:
    """Long after it filled, an order's client_order_id is refused and `find` still answers it."""
    broker = SimBroker()
    first = await broker.submit(an_order(1))
    for number in range(2, 1_002):
        await broker.submit(an_order(number))
    with pytest.raises(DuplicateOrder):
        await broker.submit(an_order(1))
    found = await broker.find(an_order(1).client_order_id)
    assert found is not None
    assert (found.broker_order_id, found.lifecycle, found.filled_qty, found.avg_fill_price) == (
        first.broker_order_id, Lifecycle.FILLED, 11, first.avg_fill_price)
    assert first.avg_fill_price == Decimal("190.27")  # AAPL=190.25 + 1 bps, up to the cent
    assert broker.attempts == 1_002
    await broker.close()


async def test_open_orders_stay_in_memory_until_canceled() -> None:
    """A resting limit order is in memory while open; canceled, it leaves memory, not the book."""
    broker = SimBroker()
    placed = await broker.submit(an_order(1, OrderType.LIMIT))
    await broker.submit(an_order(2))
    assert list(broker.open_orders) == [placed.broker_order_id]
    assert await broker.cancel(placed.broker_order_id) is True
    assert broker.open_orders == {}
    assert await broker.cancel(placed.broker_order_id) is False
    found = await broker.find(placed.client_order_id)
    assert found is not None and found.lifecycle is Lifecycle.CLOSED and found.filled_qty == 0
    assert found.reason == "canceled at the worker's request"
    with pytest.raises(DuplicateOrder):
        await broker.submit(an_order(1, OrderType.LIMIT))
    await broker.close()


async def test_restart_on_the_ledger_refuses_repeats_and_keeps_open_orders(tmp_path: Path) -> None:
    """A new sim on the same ledger refuses old client_order_ids and can cancel a resting order."""
    ledger = tmp_path / "ledger.jsonl"
    before = SimBroker(ledger_path=ledger)
    filled = await before.submit(an_order(1))
    resting = await before.submit(an_order(2, OrderType.LIMIT))
    await before.close()

    after = SimBroker(ledger_path=ledger)
    for number, order_type in ((1, OrderType.MARKET), (2, OrderType.LIMIT)):
        with pytest.raises(DuplicateOrder):
            await after.submit(an_order(number, order_type))
    found = await after.find(filled.client_order_id)
    assert found is not None and found.broker_order_id == filled.broker_order_id
    assert list(after.open_orders) == [resting.broker_order_id]
    assert await after.cancel(resting.broker_order_id) is True
    await after.submit(an_order(3))
    await after.close()
    assert [line["client_order_id"] for line in read_ledger(ledger)] == [
        an_order(n).client_order_id for n in (1, 2, 3)
    ]


async def test_orders_view_reads_every_order_received_in_order() -> None:
    """`orders` maps each client_order_id received, oldest first, to the order as it was sent."""
    broker = SimBroker()
    sent = [an_order(n, OrderType.LIMIT if n % 2 else OrderType.MARKET) for n in range(4)]
    for order in sent:
        await broker.submit(order)
    view = broker.orders
    assert list(view) == [o.client_order_id for o in sent] and len(view) == 4
    assert [view[o.client_order_id].order for o in sent] == sent
    assert sent[0].client_order_id in view and "f" * 24 not in view
    with pytest.raises(KeyError):
        view["f" * 24]
    await broker.close()


def sqlite_memory_used() -> int:
    """Bytes SQLite holds in this process, all connections (sqlite3_status64 MEMORY_USED)."""
    try:
        library = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        services.unavailable("libsqlite3.so.0 not loadable: SQLite is linked into Python here",
                             "the machines this project runs on link Python to libsqlite3")
    library.sqlite3_status64.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                                         ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    current, highest = ctypes.c_int64(), ctypes.c_int64()
    assert library.sqlite3_status64(0, ctypes.byref(current), ctypes.byref(highest), 0) == 0
    return current.value


async def test_the_books_page_cache_is_capped_at_64_kib() -> None:
    """The book's SQLite connection is set to a 64 KiB page cache."""
    broker = SimBroker()
    await broker.submit(an_order(1))
    assert broker._book is not None
    assert broker._book._db.execute("PRAGMA cache_size").fetchone()[0] == -64
    await broker.close()


async def test_the_books_sqlite_memory_stops_growing_within_2000_orders() -> None:
    """From 2,000 to 10,000 filled orders SQLite's own memory grows by under 16 KiB (with the
    earlier 512 KiB cache it grew about 196 KiB over the same orders, the cache still filling)."""
    broker = SimBroker()
    for number in range(1, 2_001):
        await broker.submit(an_order(number))
    before = sqlite_memory_used()
    for number in range(2_001, 10_001):
        await broker.submit(an_order(number))
    grown = sqlite_memory_used() - before
    assert grown < 16 * 1024, f"SQLite's memory grew {grown / 1024:.0f} KiB over 8,000 orders"
    await broker.close()

# -- the market (contract: "The sim broker's market") -------------------------------------------
def order(number: int, side: Side = Side.BUY, order_type: OrderType = OrderType.MARKET,
          qty: int = 10, limit: str | None = None, stop: str | None = None,
          tif: TimeInForce = TimeInForce.DAY) -> OrderRequest:
    return OrderRequest(client_order_id=f"m{number:023x}", symbol="AAPL", side=side, qty=qty,
                        order_type=order_type, time_in_force=tif,
                        limit_price=None if limit is None else Decimal(limit),
                        stop_price=None if stop is None else Decimal(stop))


async def next_view(stream: AsyncIterator[OrderView | Resync]) -> OrderView:
    item = await asyncio.wait_for(anext(stream), 2)
    assert isinstance(item, OrderView)
    return item


# AAPL at 190.25, spread 2 bps: bid 190.23 (floor), ask 190.27 (ceiling).
BID, ASK = Decimal("190.23"), Decimal("190.27")


@pytest.mark.parametrize(("side", "price"), [(Side.BUY, ASK), (Side.SELL, BID)])
async def test_a_market_order_fills_at_once_at_the_touch(side: Side, price: Decimal) -> None:
    broker = SimBroker()
    view = await broker.submit(order(1, side))
    assert (view.lifecycle, view.filled_qty, view.avg_fill_price) == (Lifecycle.FILLED, 10, price)
    assert broker.open_orders == {}
    await broker.close()


@pytest.mark.parametrize(("side", "marketable", "resting"), [
    (Side.BUY, "190.27", "190.26"), (Side.SELL, "190.23", "190.24")])
async def test_a_limit_order_fills_when_marketable_else_rests(side: Side, marketable: str,
                                                              resting: str) -> None:
    broker = SimBroker()
    done = await broker.submit(order(1, side, OrderType.LIMIT, limit=marketable))
    assert done.lifecycle is Lifecycle.FILLED and done.avg_fill_price == (
        ASK if side is Side.BUY else BID)
    rests = await broker.submit(order(2, side, OrderType.LIMIT, limit=resting))
    assert (rests.lifecycle, rests.filled_qty) == (Lifecycle.WORKING, 0)
    assert list(broker.open_orders.values()) == [rests.client_order_id]
    await broker.close()


async def test_stop_orders_trigger_on_the_touch() -> None:
    broker = SimBroker()
    triggered = await broker.submit(order(1, Side.BUY, OrderType.STOP, stop="190.27"))
    assert (triggered.lifecycle, triggered.avg_fill_price) == (Lifecycle.FILLED, ASK)
    waiting = await broker.submit(order(2, Side.SELL, OrderType.STOP, stop="190.00"))
    assert waiting.lifecycle is Lifecycle.WORKING
    limit = await broker.submit(order(3, Side.BUY, OrderType.STOP_LIMIT, stop="190.00",
                                      limit="190.10"))
    assert limit.lifecycle is Lifecycle.WORKING  # triggered, but the ask is above its limit
    await broker.close()


async def test_ioc_and_fok_cancel_what_cannot_fill_at_once() -> None:
    broker = SimBroker(fill_qty=4)
    ioc = await broker.submit(order(1, tif=TimeInForce.IOC))
    assert (ioc.lifecycle, ioc.filled_qty, ioc.avg_fill_price) == (Lifecycle.CLOSED, 4, ASK)
    assert ioc.reason == "immediate or cancel, the rest could not fill at once"
    fok = await broker.submit(order(2, tif=TimeInForce.FOK))
    assert (fok.lifecycle, fok.filled_qty) == (Lifecycle.CLOSED, 0)
    assert fok.reason == "fill or kill could not fill at once"
    found = await broker.find(ioc.client_order_id)
    assert found is not None and (found.lifecycle, found.filled_qty, found.avg_fill_price) == (
        Lifecycle.CLOSED, 4, ASK)
    await broker.close()


async def test_chunked_fills_come_through_updates_and_find() -> None:
    """fill_qty 4 every 10 ms: 10 shares fill as 4, 8, 10 (cumulative), each one pushed after
    the first item of the subscription, a Resync."""
    broker = SimBroker(fill_qty=4, fill_interval=0.01)
    stream = broker.updates()
    assert await anext(stream) == Resync()
    first = await broker.submit(order(1))
    assert (first.lifecycle, first.filled_qty) == (Lifecycle.WORKING, 4)
    seen: list[OrderView] = []
    while not seen or not seen[-1].ended:
        seen.append(await next_view(stream))
    assert [(v.filled_qty, v.lifecycle) for v in seen] == [
        (4, Lifecycle.WORKING), (8, Lifecycle.WORKING), (10, Lifecycle.FILLED)]
    found = await broker.find(first.client_order_id)
    assert found is not None and (found.filled_qty, found.avg_fill_price) == (10, ASK)
    await stream.aclose()
    await broker.close()


async def test_a_cancel_closes_the_order_through_updates() -> None:
    broker = SimBroker()
    stream = broker.updates()
    assert await anext(stream) == Resync()
    resting = await broker.submit(order(1, order_type=OrderType.LIMIT, limit="100"))
    assert await broker.cancel(resting.broker_order_id) is True
    closed = await next_view(stream)
    assert (closed.client_order_id, closed.lifecycle, closed.filled_qty) == (
        resting.client_order_id, Lifecycle.CLOSED, 0)
    await stream.aclose()
    await broker.close()


async def test_quotes_come_from_the_market() -> None:
    broker = SimBroker()
    quote = await broker.quote("aapl")
    assert (quote.symbol, quote.bid, quote.ask, quote.last) == ("AAPL", BID, ASK,
                                                               Decimal("190.25"))
    assert quote.reference == Decimal("190.25")
    await broker.close()


async def test_the_ledger_records_fills_and_a_restart_keeps_partial_fills(tmp_path: Path) -> None:
    """A partly filled order survives a restart on the ledger with its fills, and goes on."""
    ledger = tmp_path / "ledger.jsonl"
    before = SimBroker(ledger_path=ledger, fill_qty=3, fill_interval=60)
    partial = await before.submit(order(1))
    assert partial.filled_qty == 3
    await before.close()
    assert [(f["filled_qty"], f["status"]) for f in read_fills(ledger)] == [(3, "new")]
    after = SimBroker(ledger_path=ledger, fill_qty=3, fill_interval=0.01)
    found = await after.find(partial.client_order_id)
    assert found is not None and (found.lifecycle, found.filled_qty) == (Lifecycle.WORKING, 3)
    for _ in range(200):
        found = await after.find(partial.client_order_id)
        if found is not None and found.ended:
            break
        await asyncio.sleep(0.01)
    assert found is not None and (found.lifecycle, found.filled_qty, found.avg_fill_price) == (
        Lifecycle.FILLED, 10, ASK)
    assert [f["filled_qty"] for f in read_fills(ledger)] == [3, 6, 9, 10]
    await after.close()
