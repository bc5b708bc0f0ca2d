"""The Alpaca adapter: the one module that imports alpaca-py.

alpaca-py is imported when an AlpacaBroker is built, never at module import: it pulls in
pandas, which a worker running the sim broker must not pay for. Its client is blocking, so
every call runs in a small thread pool, after the shared rate limiter has given it a turn.
alpaca-py's own retries (a blocking `time.sleep(3)` on 429/504) are switched off: the
executor owns the retry policy. Every HTTP request carries a timeout, and errors are
classified from the HTTP status (see `alpaca_errors`), never by parsing alpaca-py's APIError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import warnings
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from twap_schemas.common import OrderType
from worker.brokers.alpaca_errors import Operation, classify_http_error, error_message
from worker.brokers.alpaca_stream import TradeUpdates, stream_factory_check, trade_stream_url
from worker.brokers.alpaca_views import order_view, price, timestamp
from worker.brokers.base import BeforeSend, OrderRequest
from worker.brokers.orders import OrderView, Quote, QuoteUnavailable, Resync
from worker.brokers.ratelimit import RateLimiter
from worker.core.retry import BrokerRejection, TransientBrokerError

if TYPE_CHECKING:
    from alpaca.common.rest import RESTClient

log = logging.getLogger(__name__)
# The websocket library's own logger prints every frame at DEBUG, the authentication frame
# (key and secret) included: the stream gets a logger of its own that never goes below INFO.
_WS_LOG = logging.getLogger("worker.brokers.alpaca.websocket")
_WS_LOG.setLevel(logging.INFO)

class _HttpFailure(Exception):
    """An HTTP error answer, unwrapped from alpaca-py's APIError (internal)."""

    def __init__(self, status: int, body: str, retry_after: str | None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.retry_after = retry_after


class AlpacaBroker:
    """Places, finds and cancels orders at Alpaca through alpaca-py's TradingClient."""

    name = "alpaca"

    def __init__(
        self,
        *,
        api_key: SecretStr,
        secret_key: SecretStr,
        paper: bool = True,
        base_url: str | None = None,
        timeout_seconds: float = 10.0,
        max_concurrency: int = 4,
        limiter: RateLimiter | None = None,
        stream_url: str | None = None,
        data_url: str | None = None,
        stream_wait: float = 1.0,
        stream_wait_cap: float = 30.0,
        quote_cache_seconds: float = 1.0,
    ) -> None:
        _import_alpaca()
        from alpaca.common.exceptions import APIError
        from alpaca.data.historical.crypto import CryptoHistoricalDataClient
        from alpaca.data.historical.stock import StockHistoricalDataClient
        from alpaca.trading.client import TradingClient

        self._api_error: type[Exception] = APIError
        self.endpoint = _base_url(base_url) or ("paper" if paper else "live")
        self.timeout_seconds = timeout_seconds
        key, secret = api_key.get_secret_value(), secret_key.get_secret_value()
        self._client = _harden(
            TradingClient(key, secret, paper=paper, raw_data=True,
                          url_override=_base_url(base_url)),
            timeout_seconds, max_concurrency,
        )
        data_root = _base_url(data_url)
        self._stocks = _harden(
            StockHistoricalDataClient(key, secret, raw_data=True, url_override=data_root),
            timeout_seconds, max_concurrency,
        )
        self._crypto = _harden(
            CryptoHistoricalDataClient(key, secret, raw_data=True, url_override=data_root),
            timeout_seconds, max_concurrency,
        )
        self.quote_cache_seconds = quote_cache_seconds
        self._quotes: dict[str, tuple[float, Quote]] = {}
        self.stream_url = trade_stream_url(stream_url, base_url, paper)
        self._updates = TradeUpdates(
            _trading_stream(key, secret, paper, self.stream_url, timeout_seconds),
            url=self.stream_url,
            secrets=(key, secret),
            first_wait=stream_wait,
            wait_cap=stream_wait_cap,
            handshake_seconds=max(timeout_seconds * 3, 1.0),
        )
        self._limiter = limiter or RateLimiter(200, 60.0)
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="alpaca")
        self._slots = asyncio.Semaphore(max_concurrency)
        # requests' timeout bounds connect and each read, not DNS or a trickling body.
        self._backstop = timeout_seconds * 3 + 1
        self._closed = False

    def __repr__(self) -> str:
        return f"AlpacaBroker(endpoint={self.endpoint!r}, timeout_seconds={self.timeout_seconds})"

    async def submit(
        self, order: OrderRequest, before_send: BeforeSend | None = None
    ) -> OrderView:
        request = _order_request(order)
        try:
            raw = await self._call(
                "submit", order.client_order_id, lambda: self._client.submit_order(request),
                before_send,
            )
        except _HttpFailure as failure:
            raise _classify("submit", failure) from None
        return _view("submit", raw)

    async def find(self, client_order_id: str) -> OrderView | None:
        try:
            get = self._client.get_order_by_client_id
            raw = await self._call("find", client_order_id, lambda: get(client_order_id))
        except _HttpFailure as failure:
            if failure.status == 404 and _is_alpaca_error(failure.body):
                return None
            if failure.status == 404:
                # A 404 page from a proxy or a wrong base URL says nothing about the order.
                raise TransientBrokerError(
                    f"alpaca find: HTTP 404 that is not Alpaca's answer: "
                    f"{error_message(failure.body)}"
                ) from None
            raise _classify("find", failure) from None
        return _view("find", raw)

    async def cancel(self, broker_order_id: str) -> bool:
        try:
            order_id = uuid.UUID(broker_order_id)
        except ValueError:
            log.info("broker.cancel_unknown broker_order_id=%s (not an Alpaca id)", broker_order_id)
            return False
        try:
            await self._call("cancel", None, lambda: self._client.cancel_order_by_id(order_id))
        except _HttpFailure as failure:
            if failure.status in {404, 422}:
                # 404: no such order; 422: already filled, canceled or expired.
                log.info(
                    "broker.cancel_not_open broker_order_id=%s status=%s",
                    broker_order_id,
                    failure.status,
                )
                return False
            raise _classify("cancel", failure) from None
        return True

    def updates(self) -> AsyncGenerator[OrderView | Resync, None]:
        """A new subscription to the trade updates stream (see TradeUpdates.subscribe)."""
        return self._updates.subscribe()

    async def quote(self, symbol: str) -> Quote:
        """Bid, ask and last from Alpaca's market data snapshot (one request gives all three;
        a pair with `/` is crypto), reused for `quote_cache_seconds`."""
        now = time.monotonic()
        cached = self._quotes.get(symbol)
        if cached is not None and now - cached[0] < self.quote_cache_seconds:
            return cached[1]
        if not symbol.strip():
            raise QuoteUnavailable("alpaca quote: the symbol is empty")
        fetch = self._crypto_snapshot if "/" in symbol else self._stock_snapshot
        try:
            raw = await self._call("quote", None, lambda: fetch(symbol))
        except _HttpFailure as failure:
            raise QuoteUnavailable(
                f"alpaca quote {symbol}: HTTP {failure.status}: {error_message(failure.body)}"
            ) from None
        except TransientBrokerError as exc:
            reason = str(exc).removeprefix("alpaca quote: ")
            raise QuoteUnavailable(f"alpaca quote {symbol}: {reason}") from None
        quote = _quote(symbol, raw)
        self._quotes[symbol] = (now, quote)
        return quote

    def _stock_snapshot(self, symbol: str) -> Any:
        from alpaca.data.requests import StockSnapshotRequest

        return self._stocks.get_stock_snapshot(
            StockSnapshotRequest(symbol_or_symbols=symbol)
        )

    def _crypto_snapshot(self, symbol: str) -> Any:
        from alpaca.data.requests import CryptoSnapshotRequest

        return self._crypto.get_crypto_snapshot(
            CryptoSnapshotRequest(symbol_or_symbols=symbol)
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._updates.close()
        # In-flight requests end within their timeout; wait for them, then drop the connections.
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
        for client in (self._client, self._stocks, self._crypto):
            client._session.close()

    async def _call(
        self,
        op: Operation,
        client_order_id: str | None,
        fn: Callable[[], Any],
        before_send: BeforeSend | None = None,
    ) -> Any:
        """Run one blocking alpaca-py call: rate limit, a free slot, the caller's last look
        (`before_send`, after both waits), a worker thread, a timeout."""
        if self._closed:
            raise TransientBrokerError(f"alpaca {op}: the broker is closed")
        await self._limiter.wait(op, client_order_id)
        async with self._slots:
            if before_send is not None:
                await before_send()
            loop = asyncio.get_running_loop()
            try:
                return await asyncio.wait_for(loop.run_in_executor(self._pool, fn), self._backstop)
            except self._api_error as exc:
                raise _unwrap(exc) from None
            except (requests.RequestException, TimeoutError, ValueError) as exc:
                # Timeout, dropped connection, or a success status whose body is not JSON: the
                # request may have reached Alpaca, so a submit must be looked up before resending.
                if isinstance(exc, requests.Timeout | TimeoutError):
                    what = f"no answer within {self.timeout_seconds} s"
                else:
                    what = "request failed"
                raise TransientBrokerError(
                    f"alpaca {op}: {what} ({type(exc).__name__})", ambiguous=True
                ) from None


def _classify(op: Operation, failure: _HttpFailure) -> Exception:
    return classify_http_error(op, failure.status, failure.body, failure.retry_after)


def _is_alpaca_error(body: str) -> bool:
    """Alpaca's own error answers are JSON objects with a numeric `code` and a `message`."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("code"), int) and "message" in parsed


def _unwrap(exc: Exception) -> _HttpFailure:
    """Status, body and Retry-After of an APIError, without its JSON-parsing properties."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    body = getattr(response, "text", None)
    headers = getattr(response, "headers", None) or {}
    return _HttpFailure(
        status if isinstance(status, int) else 0,
        body if isinstance(body, str) else str(exc),
        headers.get("Retry-After"),
    )


def _view(op: Operation, raw: Any) -> OrderView:
    """The OrderView of Alpaca's order JSON; an answer that is not an order is transient (and
    ambiguous for a submit: the order may exist)."""
    try:
        return order_view(raw)
    except ValueError as exc:
        raise TransientBrokerError(
            f"alpaca {op}: the answer is not a readable order ({exc})", ambiguous=op == "submit"
        ) from None


def _price(order: OrderRequest, name: str, value: Decimal | None) -> float:
    """Decimal inside the worker, float for alpaca-py: refuse a price the float would change."""
    if value is None:
        raise BrokerRejection(f"alpaca submit: a {order.order_type} order needs {name}")
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        raise BrokerRejection(f"alpaca submit: {name} {value} has too many digits")
    return as_float


def _order_request(order: OrderRequest) -> Any:
    """alpaca-py's request model for one child order."""
    from alpaca.trading import requests as alpaca_requests
    from alpaca.trading.enums import OrderSide, TimeInForce

    common: dict[str, Any] = {
        "symbol": order.symbol,
        "qty": order.qty,
        "side": OrderSide(str(order.side)),
        "time_in_force": TimeInForce(str(order.time_in_force)),
        "client_order_id": order.client_order_id,
    }
    kind = OrderType(order.order_type)
    try:
        if kind is OrderType.MARKET:
            return alpaca_requests.MarketOrderRequest(**common)
        if kind is OrderType.LIMIT:
            limit = _price(order, "limit_price", order.limit_price)
            return alpaca_requests.LimitOrderRequest(**common, limit_price=limit)
        if kind is OrderType.STOP:
            stop = _price(order, "stop_price", order.stop_price)
            return alpaca_requests.StopOrderRequest(**common, stop_price=stop)
        limit = _price(order, "limit_price", order.limit_price)
        stop = _price(order, "stop_price", order.stop_price)
        return alpaca_requests.StopLimitOrderRequest(**common, limit_price=limit, stop_price=stop)
    except ValueError as exc:  # pydantic's ValidationError: the order cannot be expressed
        first_line = str(exc).splitlines()[0]
        raise BrokerRejection(f"alpaca submit: invalid order: {first_line}") from None


def _base_url(url: str | None) -> str | None:
    """alpaca-py wants the REST root without `/v2`; accept it with or without."""
    if not url:
        return None
    url = url.rstrip("/")
    return url.removesuffix("/v2")


def _import_alpaca() -> None:
    """Load alpaca-py once, quietly: `alpaca.trading` imports its websocket stream module,
    which imports the deprecated `websockets.legacy` (a warning about alpaca-py, not us)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"websockets\.")
        import alpaca.trading  # noqa: F401


_Client = TypeVar("_Client", bound="RESTClient")


def _harden(client: _Client, timeout: float, pool_size: int) -> _Client:
    """An alpaca-py REST client with its retries off, a timeout on every request and no
    urllib3 retries."""
    knobs = ("_retry", "_retry_wait", "_retry_codes", "_session")
    missing = [knob for knob in knobs if not hasattr(client, knob)]
    if missing:
        raise RuntimeError(
            f"alpaca-py changed: {type(client).__name__} has no {', '.join(missing)}; "
            "its blocking retries cannot be switched off"
        )
    client._retry = 0
    client._retry_wait = 0
    client._retry_codes = []
    client._session.close()
    client._session = _TimeoutSession(timeout, pool_size)
    return client


def _trading_stream(key: str, secret: str, paper: bool, url: str, timeout: float) -> Any:
    """alpaca-py's TradingStream for the trade updates, raw JSON (read into OrderView here)."""
    from alpaca.trading.stream import TradingStream

    stream = TradingStream(
        key,
        secret,
        paper=paper,
        raw_data=True,
        url_override=url,
        websocket_params={
            "ping_interval": 10,
            "ping_timeout": 20,  # a silent connection is given up within half a minute
            "max_queue": 1024,
            "open_timeout": max(timeout * 3, 1.0),
            "close_timeout": 1,
            "logger": _WS_LOG,
        },
    )
    stream_factory_check(stream)
    return stream


def _quote(symbol: str, raw: Any) -> Quote:
    """A Quote from a snapshot answer ({symbol: {latestQuote, latestTrade}})."""
    snapshot = raw.get(symbol) if isinstance(raw, dict) else None
    if not isinstance(snapshot, dict):
        raise QuoteUnavailable(f"alpaca quote {symbol}: no market data for this symbol")
    latest_quote = snapshot.get("latestQuote") or {}
    latest_trade = snapshot.get("latestTrade") or {}
    try:
        bid = price(latest_quote.get("bp"), "bid")
        ask = price(latest_quote.get("ap"), "ask")
        last = price(latest_trade.get("p"), "last")
    except ValueError as exc:
        raise QuoteUnavailable(f"alpaca quote {symbol}: unreadable market data ({exc})") from None
    at = timestamp(latest_quote.get("t")) or timestamp(latest_trade.get("t"))
    quote = Quote(symbol=symbol, bid=bid, ask=ask, last=last, at=at or datetime.now(UTC))
    if quote.reference is None:
        raise QuoteUnavailable(
            f"alpaca quote {symbol}: no two-sided quote (bid {bid}, ask {ask}) and no last trade"
        )
    return quote


class _TimeoutSession(requests.Session):
    """A requests session whose every request has a timeout and which never retries."""

    def __init__(self, timeout: float, pool_size: int) -> None:
        super().__init__()
        self.timeout = timeout
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(  # type: ignore[override]
        self, method: str, url: str, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, **kwargs)
