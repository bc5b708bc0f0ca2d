"""The stand-in speaks Alpaca as alpaca-py understands it (so adapter tests mean something)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from tests.support.alpaca_settings import STANDIN_KEY, STANDIN_SECRET
from tests.support.alpaca_standin import AlpacaStandIn

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]


@pytest.fixture
def client(alpaca_standin: AlpacaStandIn) -> Any:
    """alpaca-py's own TradingClient, parsing into its models, pointed at the stand-in."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"websockets\.")
        from alpaca.trading.client import TradingClient

    return TradingClient(STANDIN_KEY, STANDIN_SECRET, url_override=alpaca_standin.url)


def test_orders_parse_into_alpaca_py_models(client: Any) -> None:
    """Submit, get by id, get by client id, and list answers validate as alpaca-py Orders."""
    from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
    from alpaca.trading.requests import GetOrdersRequest, StopLimitOrderRequest

    request = StopLimitOrderRequest(
        symbol="AAPL",
        qty=5,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        stop_price=101.5,
        limit_price=102.25,
        client_order_id="standin-model-check",
    )
    order = client.submit_order(request)
    assert order.status is OrderStatus.NEW
    assert (order.limit_price, order.stop_price) == ("102.25", "101.5")
    assert client.get_order_by_id(order.id).client_order_id == "standin-model-check"
    assert client.get_order_by_client_id("standin-model-check").id == order.id
    assert [o.id for o in client.get_orders(GetOrdersRequest(status="open"))] == [order.id]


def test_clock_and_account_parse_into_alpaca_py_models(client: Any) -> None:
    """GET /v2/clock and /v2/account validate as alpaca-py's Clock and TradeAccount."""
    assert client.get_clock().is_open is True
    assert client.get_account().account_number == "PA0STANDIN"


def test_missing_credentials_get_401(alpaca_standin: AlpacaStandIn) -> None:
    """Without the key headers the stand-in answers 401, as Alpaca does."""
    import requests

    response = requests.get(f"{alpaca_standin.url}/v2/account", timeout=5)
    assert response.status_code == 401
