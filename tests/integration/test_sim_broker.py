"""The sim broker keeps open orders in memory and every order in its on-disk book: a repeated
client_order_id is refused for the broker's life and, with a ledger, after a restart."""

from __future__ import annotations

import gc
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest

from twap_schemas.common import OrderType, Side
from worker.brokers.base import OrderRequest
from worker.brokers.orders import Lifecycle
from worker.brokers.sim import SimBroker as Sim
from worker.brokers.sim import read_ledger
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


def SimBroker(**kwargs: object) -> Sim:  # noqa: N802 - the sim of these tests: AAPL at 190.25
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
