"""One suite, every adapter: what the executor relies on from any `Broker`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from tests.support.alpaca_settings import standin_settings
from tests.support.alpaca_standin import AlpacaStandIn
from twap_schemas.common import OrderType, Side
from worker.brokers.base import Broker, NotSent, OrderRequest
from worker.brokers.factory import build_broker
from worker.core.retry import DuplicateOrder
from worker.settings import Settings

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = pytest.mark.timeout(20)


@pytest.fixture(params=["sim", "alpaca"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """The sim broker, and the Alpaca adapter against the local stand-in."""
    if request.param == "sim":
        # MSFT above every limit the tests send: a limit buy rests, as at the stand-in.
        built = build_broker(Settings(broker="sim", sim_ledger_path=None, sim_prices="MSFT=420"))
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
        limit_price=Decimal("410.5") if order_type is OrderType.LIMIT else None,
    )


async def test_submit_returns_the_order_with_its_client_order_id(broker: Broker) -> None:
    """submit answers an OrderView carrying the client_order_id and a broker id."""
    order = an_order()
    placed = await broker.submit(order)
    assert placed.client_order_id == order.client_order_id
    assert placed.broker_order_id


async def test_repeated_submit_is_a_duplicate(broker: Broker) -> None:
    """A second submit of the same client_order_id raises DuplicateOrder."""
    order = an_order(OrderType.LIMIT)
    await broker.submit(order)
    with pytest.raises(DuplicateOrder):
        await broker.submit(order)


async def test_find_unknown_is_none(broker: Broker) -> None:
    """find of a client_order_id the broker never saw returns None."""
    assert await broker.find(uuid.uuid4().hex[:24]) is None


async def test_find_known_returns_the_same_broker_order(broker: Broker) -> None:
    """find of a submitted client_order_id returns the same broker_order_id."""
    order = an_order(OrderType.LIMIT)
    placed = await broker.submit(order)
    found = await broker.find(order.client_order_id)
    assert found is not None
    assert (found.broker_order_id, found.client_order_id) == (
        placed.broker_order_id,
        order.client_order_id,
    )


async def test_cancel_open_limit_order_then_it_is_not_open(broker: Broker) -> None:
    """cancel of a resting limit order returns True, and find then shows it not open."""
    order = an_order(OrderType.LIMIT)
    placed = await broker.submit(order)
    assert not placed.ended
    assert await broker.cancel(placed.broker_order_id) is True
    found = await broker.find(order.client_order_id)
    assert found is not None and found.ended


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
