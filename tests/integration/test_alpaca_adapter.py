"""The Alpaca adapter against a local stand-in of Alpaca's REST API (real HTTP, real alpaca-py)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.alpaca_settings import STANDIN_KEY, STANDIN_SECRET, standin_settings
from tests.support.alpaca_standin import AlpacaStandIn, Fault
from twap_schemas.common import OrderType, Side, TimeInForce
from worker.brokers.alpaca import AlpacaBroker
from worker.brokers.base import NotSent, OrderRequest
from worker.brokers.factory import MissingCredentials, build_broker
from worker.brokers.orders import Lifecycle, OrderView
from worker.brokers.ratelimit import WAIT_EVENT, RateLimiter
from worker.core.retry import BrokerRejection, DuplicateOrder, TransientBrokerError
from worker.observability.broker import TimedBroker
from worker.observability.metrics import WorkerMetrics
from worker.settings import Settings

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

ORDERS = "/v2/orders"
CREDENTIAL_VARIABLES = (
    "ALPACA_API_KEY",
    "APCA_API_KEY_ID",
    "ALPACA_SECRET_KEY",
    "APCA_API_SECRET_KEY",
)
PRICES: dict[OrderType, dict[str, Decimal]] = {
    OrderType.MARKET: {},
    OrderType.LIMIT: {"limit_price": Decimal("150.01")},
    OrderType.STOP: {"stop_price": Decimal("149.5")},
    OrderType.STOP_LIMIT: {"stop_price": Decimal("149.50"), "limit_price": Decimal("149.25")},
}


def an_order(order_type: OrderType = OrderType.MARKET, **changes: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "client_order_id": uuid.uuid4().hex[:24],
        "symbol": "AAPL",
        "side": Side.BUY,
        "qty": 7,
        "order_type": order_type,
        "time_in_force": TimeInForce.DAY,
        **PRICES[order_type],
    }
    fields.update(changes)
    return OrderRequest(**fields)


@pytest.mark.parametrize("order_type", list(OrderType))
async def test_submit_sends_each_order_type_with_its_prices(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn, order_type: OrderType
) -> None:
    """Every order type is placed with client_order_id, exact prices, side, qty and tif."""
    order = an_order(order_type, time_in_force=TimeInForce.GTC, side=Side.SELL)
    placed = await alpaca_broker.submit(order)

    assert placed.client_order_id == order.client_order_id
    assert placed.broker_order_id in alpaca_standin.orders
    sent = alpaca_standin.requests[-1].body
    assert sent["client_order_id"] == order.client_order_id
    assert (sent["symbol"], sent["side"], sent["type"]) == ("AAPL", "sell", order_type.value)
    assert sent["time_in_force"] == "gtc"
    assert Decimal(sent["qty"]) == 7
    for name in ("limit_price", "stop_price"):
        expected = PRICES[order_type].get(name)
        assert (Decimal(sent[name]) if name in sent else None) == expected


async def test_market_order_is_filled_and_priced_order_rests(alpaca_broker: AlpacaBroker) -> None:
    """submit returns the broker's view: the stand-in fills a market order at once (7 shares
    at its fill price 100.00, an exact Decimal); a limit order rests, nothing filled."""
    market = await alpaca_broker.submit(an_order(OrderType.MARKET))
    limit = await alpaca_broker.submit(an_order(OrderType.LIMIT))
    assert (market.lifecycle, market.filled_qty, market.avg_fill_price, market.reason) == (
        Lifecycle.FILLED, 7, Decimal("100.00"), None)
    assert str(market.avg_fill_price) == "100.00"
    assert market.ended
    assert (limit.lifecycle, limit.filled_qty, limit.avg_fill_price, limit.ended) == (
        Lifecycle.WORKING, 0, None, False)
    for view in (market, limit):
        assert view.at.tzinfo is not None and view.at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - view.at) < timedelta(seconds=30)


async def test_find_returns_the_view_with_cumulative_fills(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """find reads filled_qty and filled_avg_price from Alpaca's strings exactly, and the time
    from updated_at; a canceled order is CLOSED with its reason."""
    order = an_order(OrderType.LIMIT)
    placed = await alpaca_broker.submit(order)
    alpaca_standin.fill(placed.broker_order_id, 3, "150.01", report=False)
    alpaca_standin.fill(placed.broker_order_id, 1, "150.02", report=False)
    alpaca_standin.orders[placed.broker_order_id]["updated_at"] = "2026-12-04T15:30:01.123456789Z"
    found = await alpaca_broker.find(order.client_order_id)
    assert found == OrderView(
        client_order_id=order.client_order_id,
        broker_order_id=placed.broker_order_id,
        lifecycle=Lifecycle.WORKING,
        filled_qty=4,
        avg_fill_price=Decimal("150.0125"),
        at=datetime(2026, 12, 4, 15, 30, 1, 123456, tzinfo=UTC),
    )
    assert await alpaca_broker.cancel(placed.broker_order_id) is True
    closed = await alpaca_broker.find(order.client_order_id)
    assert closed is not None
    assert (closed.lifecycle, closed.filled_qty, closed.reason) == (
        Lifecycle.CLOSED, 4, "canceled at the broker")


async def test_answer_that_is_not_a_readable_order_is_transient(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A 200 whose order has a fractional filled_qty is not guessed at: transient, naming it."""
    order = an_order(OrderType.LIMIT)
    placed = await alpaca_broker.submit(order)
    alpaca_standin.orders[placed.broker_order_id]["filled_qty"] = "0.5"
    with pytest.raises(TransientBrokerError, match=r"filled_qty: .0\.5. is not a whole"):
        await alpaca_broker.find(order.client_order_id)


async def test_price_that_a_float_would_change_is_rejected_before_sending(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A Decimal price with more digits than a float keeps is refused, not rounded silently."""
    order = an_order(OrderType.LIMIT, limit_price=Decimal("150.0000000000000001"))
    with pytest.raises(BrokerRejection, match="too many digits"):
        await alpaca_broker.submit(order)
    assert alpaca_standin.count() == 0


async def test_503_is_transient_and_sent_once(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A 503 becomes TransientBrokerError after exactly one request (no hidden retry)."""
    alpaca_standin.fail_next(Fault.http(503, "service unavailable"))
    with pytest.raises(TransientBrokerError, match="503"):
        await alpaca_broker.submit(an_order())
    assert alpaca_standin.count("POST", ORDERS) == 1
    assert alpaca_standin.orders == {}


@pytest.mark.parametrize("status", [429, 504])
async def test_alpaca_py_own_retries_are_off(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn, status: int
) -> None:
    """429 and 504, which alpaca-py would retry with a blocking sleep, reach the server once."""
    alpaca_standin.fail_next(Fault.http(status, "slow down"))
    started = time.monotonic()
    with pytest.raises(TransientBrokerError):
        await alpaca_broker.submit(an_order())
    assert alpaca_standin.count("POST", ORDERS) == 1
    assert time.monotonic() - started < 2.5  # alpaca-py would sleep 3 s before a retry


async def test_429_is_transient_and_reports_retry_after(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A 429 is transient, not ambiguous, and its Retry-After shows in the message."""
    alpaca_standin.fail_next(
        Fault(
            status=429, body='{"message": "rate limit exceeded"}', headers=(("Retry-After", "2"),)
        )
    )
    with pytest.raises(TransientBrokerError, match="retry after 2 s") as caught:
        await alpaca_broker.submit(an_order())
    assert caught.value.ambiguous is False


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "invalid symbol"),
        (403, "insufficient buying power"),
        (422, "qty must be > 0"),
    ],
)
async def test_client_errors_are_rejections_with_alpacas_message(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn, status: int, message: str
) -> None:
    """400, 403 and 422 become BrokerRejection carrying Alpaca's message text."""
    alpaca_standin.fail_next(Fault.http(status, message))
    with pytest.raises(BrokerRejection) as caught:
        await alpaca_broker.submit(an_order())
    assert str(status) in str(caught.value)
    assert message in str(caught.value)


async def test_repeated_client_order_id_is_duplicate_and_booked_once(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A second submit with the same client_order_id raises DuplicateOrder; one order exists."""
    order = an_order(OrderType.LIMIT)
    first = await alpaca_broker.submit(order)
    with pytest.raises(DuplicateOrder, match="must be unique"):
        await alpaca_broker.submit(order)
    assert [o["id"] for o in alpaca_standin.orders_for(order.client_order_id)] == [
        first.broker_order_id
    ]


async def test_answer_after_timeout_is_ambiguous_and_find_recovers_it(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """Booked but answered too late: ambiguous TransientBrokerError, then find returns it."""
    alpaca_standin.fail_next(Fault.late(5.0, method="POST"))
    order = an_order()
    with pytest.raises(TransientBrokerError, match="ReadTimeout") as caught:
        await alpaca_broker.submit(order)
    assert caught.value.ambiguous is True

    found = await alpaca_broker.find(order.client_order_id)
    assert found is not None
    booked = alpaca_standin.orders_for(order.client_order_id)
    assert [o["id"] for o in booked] == [found.broker_order_id]


async def test_html_error_page_is_transient_without_crashing(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A 502 with an HTML body is transient and its message is readable text."""
    alpaca_standin.fail_next(Fault.html(502))
    with pytest.raises(TransientBrokerError) as caught:
        await alpaca_broker.submit(an_order())
    assert "502 Bad Gateway" in str(caught.value)
    assert "<" not in str(caught.value)


async def test_server_error_on_find_is_transient_not_none(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A failing lookup raises TransientBrokerError; only a 404 means "no such order"."""
    alpaca_standin.fail_next(Fault.http(503, "down", method="GET"))
    with pytest.raises(TransientBrokerError):
        await alpaca_broker.find("nothing-here")
    assert await alpaca_broker.find("nothing-here") is None


async def test_404_page_that_is_not_alpacas_answer_is_not_not_found(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A 404 HTML page (a proxy, a wrong base URL) raises: only Alpaca's own 404 means None."""
    alpaca_standin.fail_next(Fault.html(404, method="GET"))
    with pytest.raises(TransientBrokerError, match="404"):
        await alpaca_broker.find("nothing-here")
    assert await alpaca_broker.find("nothing-here") is None


async def test_before_send_runs_after_the_rate_limit_wait(alpaca_standin: AlpacaStandIn) -> None:
    """A submit that waits for its turn calls before_send only after the wait, right before
    its request; a NotSent there sends nothing and is not timed as a broker call."""
    limiter = RateLimiter(2, 1.0)  # burst of 1, then one a second
    broker = AlpacaBroker(api_key=SecretStr(STANDIN_KEY), secret_key=SecretStr(STANDIN_SECRET),
                          base_url=alpaca_standin.url, timeout_seconds=0.3, limiter=limiter)
    metrics = WorkerMetrics()
    timed = TimedBroker(broker, metrics)
    looked_at: list[float] = []

    async def stop() -> None:
        looked_at.append(time.monotonic())
        raise NotSent("kill switch engaged")

    try:
        await timed.submit(an_order())
        started = time.monotonic()
        with pytest.raises(NotSent):
            await timed.submit(an_order(), stop)
    finally:
        await broker.close()
    assert looked_at and looked_at[0] - started >= 0.8
    assert alpaca_standin.count("POST", ORDERS) == 1
    count = metrics.registry.get_sample_value(
        "twap_broker_call_seconds_count", {"operation": "submit", "result": "error"})
    assert not count


async def test_cancel_open_order_true_filled_or_unknown_false(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """cancel: True for an open order; False for a filled one, an unknown id, a non-Alpaca id."""
    resting = await alpaca_broker.submit(an_order(OrderType.LIMIT))
    filled = await alpaca_broker.submit(an_order(OrderType.MARKET))

    assert await alpaca_broker.cancel(resting.broker_order_id) is True
    assert alpaca_standin.orders[resting.broker_order_id]["status"] == "canceled"
    assert await alpaca_broker.cancel(resting.broker_order_id) is False
    assert await alpaca_broker.cancel(filled.broker_order_id) is False
    assert await alpaca_broker.cancel(str(uuid.uuid4())) is False
    assert await alpaca_broker.cancel("not-a-uuid") is False


async def test_slow_call_does_not_block_the_event_loop(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """While one request waits on the network, another call completes."""
    alpaca_standin.fail_next(Fault.late(5.0, method="POST"))
    finished: list[str] = []

    async def slow_submit() -> None:
        with pytest.raises(TransientBrokerError):
            await alpaca_broker.submit(an_order())
        finished.append("submit")

    async def quick_find() -> None:
        await alpaca_broker.find("unknown")
        finished.append("find")

    await asyncio.gather(slow_submit(), quick_find())
    assert finished == ["find", "submit"]


async def test_concurrent_calls_are_bounded_by_max_concurrency(
    alpaca_standin: AlpacaStandIn,
) -> None:
    """With broker_max_concurrency=2, the server never sees more than 2 requests at once."""
    broker = build_broker(standin_settings(alpaca_standin, broker_max_concurrency=2))
    alpaca_standin.fail_next(*[Fault.late(0.05, method="GET") for _ in range(6)])
    try:
        results = await asyncio.gather(*(broker.find(f"cid-{n}") for n in range(6)))
    finally:
        await broker.close()
    assert results == [None] * 6
    assert alpaca_standin.count("GET") == 6
    assert alpaca_standin.max_in_flight <= 2


async def test_rate_limiter_makes_calls_wait_instead_of_failing(
    alpaca_standin: AlpacaStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the limit, calls queue for their turn, all succeed, and the wait is logged."""
    limiter = RateLimiter(10, 1.0)  # burst of 1, then 9 per second
    settings = standin_settings(alpaca_standin)
    broker = AlpacaBroker(
        api_key=SecretStr(STANDIN_KEY),
        secret_key=SecretStr(STANDIN_SECRET),
        base_url=settings.alpaca_base_url,
        timeout_seconds=settings.broker_timeout_seconds,
        limiter=limiter,
    )
    caplog.set_level(logging.INFO, logger="worker.brokers.ratelimit")
    started = time.monotonic()
    try:
        placed = await asyncio.gather(*(broker.submit(an_order()) for _ in range(6)))
    finally:
        await broker.close()

    assert len({p.broker_order_id for p in placed}) == 6
    assert len(alpaca_standin.orders) == alpaca_standin.count("POST", ORDERS) == 6
    assert limiter.waited_calls >= 1
    assert any(WAIT_EVENT in record.getMessage() for record in caplog.records)
    assert time.monotonic() - started >= 0.9 * 5 / 9  # five calls past the burst, 9 per second


async def test_submit_find_and_cancel_share_one_rate_limiter(
    alpaca_standin: AlpacaStandIn,
) -> None:
    """Every kind of call takes a turn from the same limiter."""
    limiter = RateLimiter(6000, 60.0)
    broker = AlpacaBroker(
        api_key=SecretStr(STANDIN_KEY),
        secret_key=SecretStr(STANDIN_SECRET),
        base_url=alpaca_standin.url,
        timeout_seconds=0.3,
        limiter=limiter,
    )
    try:
        placed = await broker.submit(an_order(OrderType.LIMIT))
        await broker.find(placed.client_order_id)
        await broker.cancel(placed.broker_order_id)
    finally:
        await broker.close()
    assert limiter.calls == 3


@pytest.mark.parametrize(
    ("key", "secret", "named", "not_named"),
    [
        (None, None, ["ALPACA_API_KEY", "ALPACA_SECRET_KEY"], []),
        (STANDIN_KEY, None, ["ALPACA_SECRET_KEY", "APCA_API_SECRET_KEY"], ["ALPACA_API_KEY"]),
        (None, STANDIN_SECRET, ["ALPACA_API_KEY", "APCA_API_KEY_ID"], ["ALPACA_SECRET_KEY"]),
        ("  ", STANDIN_SECRET, ["ALPACA_API_KEY"], ["ALPACA_SECRET_KEY"]),
    ],
)
def test_missing_credentials_names_the_variables_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
    key: str | None,
    secret: str | None,
    named: list[str],
    not_named: list[str],
) -> None:
    """build_broker refuses alpaca without credentials: one line, the variables, no secret."""
    for variable in (
        "ALPACA_API_KEY",
        "APCA_API_KEY_ID",
        "ALPACA_SECRET_KEY",
        "APCA_API_SECRET_KEY",
    ):
        monkeypatch.delenv(variable, raising=False)
    settings = Settings(
        broker="alpaca",
        alpaca_api_key=SecretStr(key) if key is not None else None,
        alpaca_secret_key=SecretStr(secret) if secret is not None else None,
    )
    with pytest.raises(MissingCredentials) as caught:
        build_broker(settings)
    message = str(caught.value)
    assert message.startswith("TWAP_BROKER=alpaca needs ")
    assert "\n" not in message
    assert all(name in message for name in named)
    assert not any(name in message for name in not_named)
    assert STANDIN_KEY not in message and STANDIN_SECRET not in message


async def test_credentials_never_appear_in_errors_logs_or_repr(
    alpaca_broker: AlpacaBroker,
    alpaca_standin: AlpacaStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Key and secret reach the server as headers, never an error, a log line or a repr."""
    caplog.set_level(logging.DEBUG)
    alpaca_standin.fail_next(
        Fault.http(403, "forbidden"), Fault.html(502), Fault.late(5.0, method="POST")
    )
    texts = [repr(alpaca_broker)]
    for _ in range(3):
        with pytest.raises((BrokerRejection, TransientBrokerError)) as caught:
            await alpaca_broker.submit(an_order())
        texts += [str(caught.value), repr(caught.value)]
    await alpaca_broker.cancel("not-a-uuid")
    texts += [record.getMessage() for record in caplog.records]

    assert all(seen.authenticated for seen in alpaca_standin.requests)
    for text in texts:
        assert STANDIN_SECRET not in text
        assert STANDIN_KEY not in text


def test_sim_broker_does_not_load_alpaca_py_or_pandas() -> None:
    """Building the sim broker imports neither alpaca-py nor pandas (worker memory)."""
    code = (
        "import sys\n"
        "from worker.brokers.factory import build_broker\n"
        "from worker.settings import Settings\n"
        "build_broker(Settings(broker='sim'))\n"
        "loaded = [m for m in ('alpaca', 'pandas', 'worker.brokers.alpaca') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=root,
        env=env,
    )
    assert result.stdout.strip() == ""
