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
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from twap_schemas.common import OrderType
from worker.brokers.alpaca_errors import Operation, classify_http_error, error_message
from worker.brokers.base import BeforeSend, OrderRequest
from worker.brokers.orders import Lifecycle, OrderView, Quote, QuoteUnavailable, Resync
from worker.brokers.ratelimit import RateLimiter
from worker.core.retry import BrokerRejection, TransientBrokerError

if TYPE_CHECKING:
    from alpaca.trading.client import TradingClient

log = logging.getLogger(__name__)

# Statuses in which an order may still fill (pending_cancel included: it is not canceled yet).
OPEN_STATUSES = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "partially_filled",
        "pending_replace",
        "pending_review",
        "pending_cancel",
        "held",
        "done_for_day",
    }
)


_ORDER_FIELDS = ("id", "client_order_id", "status")


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
    ) -> None:
        _import_alpaca()
        from alpaca.common.exceptions import APIError

        self._api_error: type[Exception] = APIError
        self.endpoint = _base_url(base_url) or ("paper" if paper else "live")
        self.timeout_seconds = timeout_seconds
        self._client = _build_client(
            api_key, secret_key, paper, _base_url(base_url), timeout_seconds, max_concurrency
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
        return _broker_order("submit", raw)

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
        return _broker_order("find", raw)

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

    async def updates(self) -> AsyncIterator[OrderView | Resync]:
        """No push stream yet: one Resync (reconcile with find), then nothing until closed."""
        yield Resync()
        await asyncio.Event().wait()

    async def quote(self, symbol: str) -> Quote:
        raise QuoteUnavailable(f"alpaca: quotes for {symbol} are not available from this adapter")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # In-flight requests end within their timeout; wait for them, then drop the connections.
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
        self._client._session.close()

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


def _broker_order(op: Operation, raw: Any) -> OrderView:
    """The order's view, read from Alpaca's order JSON."""
    fields = {key: raw.get(key) if isinstance(raw, dict) else None for key in _ORDER_FIELDS}
    if not all(isinstance(value, str) and value for value in fields.values()):
        raise TransientBrokerError(
            f"alpaca {op}: the answer is not an order (no id, client_order_id or status)",
            ambiguous=op == "submit",
        )
    status = str(fields["status"])
    lifecycle = (Lifecycle.WORKING if status in OPEN_STATUSES
                 else Lifecycle.FILLED if status == "filled" else Lifecycle.CLOSED)
    filled = raw.get("filled_qty")
    avg = raw.get("filled_avg_price")
    return OrderView(
        client_order_id=str(fields["client_order_id"]),
        broker_order_id=str(fields["id"]),
        lifecycle=lifecycle,
        filled_qty=int(Decimal(str(filled))) if filled else 0,
        avg_fill_price=Decimal(str(avg)) if avg else None,
        at=datetime.now(UTC),
        reason=None if lifecycle is not Lifecycle.CLOSED else f"{status} at the broker",
    )


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


def _build_client(
    api_key: SecretStr,
    secret_key: SecretStr,
    paper: bool,
    base_url: str | None,
    timeout: float,
    pool_size: int,
) -> TradingClient:
    """A TradingClient with its retries off, a timeout on every request, no urllib3 retries."""
    from alpaca.trading.client import TradingClient

    client = TradingClient(
        api_key=api_key.get_secret_value(),
        secret_key=secret_key.get_secret_value(),
        paper=paper,
        raw_data=True,
        url_override=base_url,
    )
    knobs = ("_retry", "_retry_wait", "_retry_codes", "_session")
    missing = [knob for knob in knobs if not hasattr(client, knob)]
    if missing:
        raise RuntimeError(
            f"alpaca-py changed: TradingClient has no {', '.join(missing)}; "
            "its blocking retries cannot be switched off"
        )
    client._retry = 0
    client._retry_wait = 0
    client._retry_codes = []
    client._session.close()
    client._session = _TimeoutSession(timeout, pool_size)
    return client


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
