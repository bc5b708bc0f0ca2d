"""AlpacaBroker.quote(): alpaca-py's market data clients (stock and crypto snapshots) against
the local stand-in, through the shared rate limit, with a short cache and clear failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr

from tests.support.alpaca_settings import STANDIN_KEY, STANDIN_SECRET, standin_settings
from tests.support.alpaca_standin import AlpacaStandIn, Fault
from worker.brokers.alpaca import AlpacaBroker
from worker.brokers.factory import build_broker
from worker.brokers.orders import Quote, QuoteUnavailable, Resync
from worker.brokers.ratelimit import RateLimiter
from worker.observability.broker import TimedBroker
from worker.observability.metrics import WorkerMetrics

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

STOCKS = "/v2/stocks/snapshots"
CRYPTO = "/v1beta3/crypto/us/snapshots"


def broker_with(standin: AlpacaStandIn, **changes: object) -> AlpacaBroker:
    values: dict[str, object] = {
        "api_key": SecretStr(STANDIN_KEY), "secret_key": SecretStr(STANDIN_SECRET),
        "base_url": standin.url, "data_url": standin.url, "timeout_seconds": 0.3,
    }
    values.update(changes)
    return AlpacaBroker(**values)  # type: ignore[arg-type]


async def test_stock_quote_is_read_exactly(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """AAPL's snapshot: bid 189.5, ask 190.5, last 190.02 (exact), mid 190.0, at the quote's
    time; one authenticated request to the stock snapshot endpoint."""
    quote = await alpaca_broker.quote("AAPL")
    assert (quote.symbol, quote.bid, quote.ask, quote.last) == (
        "AAPL", Decimal("189.5"), Decimal("190.5"), Decimal("190.02"))
    assert quote.reference == Decimal("190.0")
    assert quote.at.tzinfo is UTC and abs(datetime.now(UTC) - quote.at) < timedelta(seconds=30)
    (seen,) = [r for r in alpaca_standin.requests if r.path == STOCKS]
    assert seen.query["symbols"] == "AAPL" and seen.authenticated


async def test_crypto_pair_goes_to_the_crypto_endpoint(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """A symbol with `/` is a crypto pair: the crypto snapshot endpoint answers it."""
    quote = await alpaca_broker.quote("BTC/USD")
    assert (quote.bid, quote.ask, quote.last) == (
        Decimal("64000.5"), Decimal("64010.25"), Decimal("64005.0"))
    assert alpaca_standin.count("GET", CRYPTO) == 1
    assert alpaca_standin.count("GET", STOCKS) == 0


async def test_quote_is_reused_within_the_cache_time_then_asked_again(
    alpaca_standin: AlpacaStandIn,
) -> None:
    """Cache 0.3 s: a second quote at once is the same object, no request; after 0.35 s a new
    request. With 0 every quote asks."""
    broker = build_broker(standin_settings(alpaca_standin, quote_cache_seconds=0.3))
    uncached = broker_with(alpaca_standin, quote_cache_seconds=0)
    try:
        first = await broker.quote("MSFT")
        assert await broker.quote("MSFT") is first
        assert alpaca_standin.count("GET", STOCKS) == 1
        await asyncio.sleep(0.35)
        await broker.quote("MSFT")
        assert alpaca_standin.count("GET", STOCKS) == 2
        await uncached.quote("MSFT")
        await uncached.quote("MSFT")
        assert alpaca_standin.count("GET", STOCKS) == 4
    finally:
        await broker.close()
        await uncached.close()


async def test_quotes_take_turns_from_the_shared_rate_limiter(
    alpaca_standin: AlpacaStandIn,
) -> None:
    """A quote is a broker call like the others: it waits for the same limiter."""
    limiter = RateLimiter(6000, 60.0)
    broker = broker_with(alpaca_standin, limiter=limiter, quote_cache_seconds=0)
    try:
        await broker.quote("AAPL")
        await broker.find("nothing")
    finally:
        await broker.close()
    assert limiter.calls == 2


@pytest.mark.parametrize(
    ("symbol", "fault", "message"),
    [
        ("ZZZZ", None, "alpaca quote ZZZZ: no market data for this symbol"),
        ("AAPL", Fault.http(403, "subscription does not permit querying recent SIP data"),
         "alpaca quote AAPL: HTTP 403: subscription does not permit querying recent SIP data"),
        ("AAPL", Fault.html(502), "alpaca quote AAPL: HTTP 502: 502 Bad Gateway nginx"),
        ("AAPL", Fault.late(3.0), "alpaca quote AAPL: no answer within 0.3 s"),
        ("  ", None, "alpaca quote: the symbol is empty"),
    ],
)
async def test_no_quote_is_quote_unavailable_with_the_reason(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn,
    symbol: str, fault: Fault | None, message: str,
) -> None:
    if fault is not None:
        alpaca_standin.fail_next(fault)
    with pytest.raises(QuoteUnavailable) as caught:
        await alpaca_broker.quote(symbol)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("bid", "ask", "last", "reference"),
    [
        (0.0, 0.0, 190.02, Decimal("190.02")),
        (0.0, 0.0, None, None),
    ],
)
async def test_one_sided_quote_falls_back_to_last_else_unavailable(
    alpaca_broker: AlpacaBroker, alpaca_standin: AlpacaStandIn,
    bid: float, ask: float, last: float | None, reference: Decimal | None,
) -> None:
    """No two-sided quote: the last trade is the reference; without one, QuoteUnavailable."""
    alpaca_standin.quotes["AAPL"] = (bid, ask, last)  # type: ignore[assignment]
    if reference is None:
        with pytest.raises(QuoteUnavailable, match="no two-sided quote"):
            await alpaca_broker.quote("AAPL")
        return
    quote = await alpaca_broker.quote("AAPL")
    assert isinstance(quote, Quote) and quote.reference == reference


async def test_timed_broker_times_quotes_and_passes_updates_through(
    alpaca_broker: AlpacaBroker,
) -> None:
    """The metrics wrapper observes quote() as operation "quote" (ok, then error) and hands
    out the adapter's own updates() subscription."""
    metrics = WorkerMetrics()
    timed = TimedBroker(alpaca_broker, metrics)
    await timed.quote("AAPL")
    with pytest.raises(QuoteUnavailable):
        await timed.quote("ZZZZ")
    for result in ("ok", "error"):
        count = metrics.registry.get_sample_value(
            "twap_broker_call_seconds_count", {"operation": "quote", "result": result})
        assert count == 1
    updates = timed.updates()
    assert await asyncio.wait_for(anext(updates), 10) == Resync()
