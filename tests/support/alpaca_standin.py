"""A local stand-in for Alpaca's trading REST API, enough for alpaca-py's TradingClient, and
for its market data snapshots (StockHistoricalDataClient, CryptoHistoricalDataClient).

It books orders like Alpaca (market orders fill at once, priced orders rest), refuses a
repeated client_order_id with 422, reports each change on its trade updates stream when one
is attached (`stream`), and plays scripted faults (status + body, or "book the
order, then answer late") so tests can pin what the adapter does with each failure. It
counts every request and keeps every booked order, so a test can assert exactly one order
per client_order_id reached the "broker".
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from tests.support.alpaca_stream import TradeStreamStandIn

FILL_PRICE = "100.00"
OPEN = {"new", "accepted", "pending_new", "partially_filled", "held"}
ORDER_TYPES = {"market", "limit", "stop", "stop_limit"}
TIME_IN_FORCE = {"day", "gtc", "opg", "cls", "ioc", "fok"}
# Market data the stand-in answers (JSON numbers, as Alpaca sends them): bid, ask, last.
QUOTES: dict[str, tuple[float, float, float]] = {
    "AAPL": (189.5, 190.5, 190.02),
    "MSFT": (409.9, 410.1, 410.0),
    "BTC/USD": (64000.5, 64010.25, 64005.0),
}
Answer = tuple[int, Any]


@dataclass(frozen=True)
class Fault:
    """One scripted answer, taken by the next request (of `method`, when given)."""

    status: int = 503
    body: str = '{"code": 50300000, "message": "service unavailable"}'
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    method: str | None = None
    hold_seconds: float = 0.0  # > 0: handle the request normally, then answer this late

    @classmethod
    def http(cls, status: int, message: str, method: str | None = None) -> Fault:
        """An Alpaca-style JSON error answer."""
        body = json.dumps({"code": status * 100000, "message": message})
        return cls(status=status, body=body, method=method)

    @classmethod
    def html(cls, status: int, method: str | None = None) -> Fault:
        """An HTML error page, as a proxy or load balancer sends it."""
        body = f"<html><head><title>{status} Bad Gateway</title></head><body>nginx</body></html>"
        return cls(status=status, body=body, content_type="text/html", method=method)

    @classmethod
    def late(cls, seconds: float, method: str | None = None) -> Fault:
        """Do the work (book the order), then keep the answer back for `seconds`."""
        return cls(status=0, body="", method=method, hold_seconds=seconds)


@dataclass(frozen=True)
class Seen:
    """One request as the stand-in received it (JSON body parsed with Decimal floats)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    authenticated: bool


@dataclass
class AlpacaStandIn:
    """The server and its state. `start()` it in a test fixture; `stop()` releases held answers."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    quotes: dict[str, tuple[float, float, float]] = field(default_factory=lambda: dict(QUOTES))
    stream: TradeStreamStandIn | None = None  # trade updates are pushed here when attached
    _outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition | None = None
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> AlpacaStandIn:
        self._arrived = threading.Condition(self._lock)
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def fail_next(self, *faults: Fault) -> None:
        """Queue faults; each is used once, by the next request it matches."""
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Drop the faults not used yet: from now on every request is answered normally."""
        with self._lock:
            self._faults.clear()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests received, optionally only those with this method and path."""
        with self._lock:
            return self._count(method, path)

    def wait_for_requests(self, n: int, method: str | None = None, timeout: float = 10.0) -> int:
        """Block (call it through asyncio.to_thread) until `n` requests of `method` arrived;
        returns the count, which is below `n` only when `timeout` ran out."""
        assert self._arrived is not None, "start() the stand-in first"
        with self._arrived:
            self._arrived.wait_for(lambda: self._count(method, None) >= n, timeout)
            return self._count(method, None)

    def _count(self, method: str | None, path: str | None) -> int:
        return sum(
            1
            for seen in self.requests
            if (method is None or seen.method == method) and (path is None or seen.path == path)
        )

    def orders_for(self, client_order_id: str) -> list[dict[str, Any]]:
        """Every booked order carrying this client_order_id (one, if idempotency held)."""
        with self._lock:
            return [o for o in self.orders.values() if o["client_order_id"] == client_order_id]

    def set_status(self, order_id: str, status: str) -> None:
        with self._lock:
            self.orders[order_id]["status"] = status

    def fill(self, order_id: str, qty: int, price: str, *, report: bool = True) -> dict[str, Any]:
        """Fill `qty` more shares at `price`: cumulative filled_qty and average move as at
        Alpaca. `report=False` keeps the update off the stream (only polling shows it).
        Returns a copy of the order after the fill."""
        with self._lock:
            order = self.orders[order_id]
            old_qty = Decimal(order["filled_qty"] or "0")
            old_avg = Decimal(order["filled_avg_price"] or "0")
            new_qty = old_qty + qty
            avg = (old_avg * old_qty + Decimal(price) * qty) / new_qty
            done = new_qty >= Decimal(order["qty"])
            now = _now()
            order.update(
                filled_qty=str(new_qty),
                filled_avg_price=str(avg.normalize()),
                status="filled" if done else "partially_filled",
                updated_at=now,
                filled_at=now if done else order["filled_at"],
            )
            snapshot = dict(order)
        if report:
            self._report("fill" if done else "partial_fill", snapshot, price=price, qty=str(qty))
        return snapshot

    def _report(
        self, event: str, order: dict[str, Any], *, price: str | None = None,
        qty: str | None = None,
    ) -> None:
        if self.stream is not None:
            self.stream.push(event, order, price=price, qty=qty)

    def _flush(self) -> None:
        """Push the trade updates the last request caused (outside the lock)."""
        with self._lock:
            pending, self._outbox = self._outbox, []
        for event, order in pending:
            price = order["filled_avg_price"] if event == "fill" else None
            self._report(event, order, price=price, qty=order["filled_qty"] if price else None)

    # --- request handling (called from server threads) ---

    def handle(self, seen: Seen) -> tuple[Answer | Fault, float]:
        """The answer to one request, and how long to hold it back."""
        with self._lock:
            self.requests.append(seen)
            if self._arrived is not None:
                self._arrived.notify_all()
            fault = self._take_fault(seen.method)
            if fault is not None and not fault.hold_seconds:
                return fault, 0.0
            answer = self._route(seen)
        self._flush()
        return answer, fault.hold_seconds if fault else 0.0

    def wait_released(self, seconds: float) -> None:
        self._released.wait(seconds)

    def track(self, delta: int) -> None:
        with self._lock:
            self.in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _take_fault(self, method: str) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.method is None or fault.method == method:
                return self._faults.pop(index)
        return None

    def _route(self, seen: Seen) -> Answer:
        if not seen.authenticated:
            return 401, {"code": 40110000, "message": "request is not authorized"}
        path = seen.path
        routes: dict[tuple[str, str], Callable[[Seen], Answer]] = {
            ("POST", "/v2/orders"): self._submit,
            ("GET", "/v2/orders"): self._list,
            ("GET", "/v2/orders:by_client_order_id"): self._by_client_order_id,
            ("GET", "/v2/clock"): lambda _: (200, _clock()),
            ("GET", "/v2/account"): lambda _: (200, _account()),
            ("GET", "/v2/stocks/snapshots"): lambda seen: (200, self._snapshots(seen)),
            ("GET", "/v1beta3/crypto/us/snapshots"): lambda seen: (
                200, {"snapshots": self._snapshots(seen)}
            ),
        }
        route = routes.get((seen.method, path))
        if route is not None:
            return route(seen)
        if path.startswith("/v2/orders/") and seen.method in {"GET", "DELETE"}:
            order = self.orders.get(path.removeprefix("/v2/orders/"))
            if order is None:
                return 404, {"code": 40410000, "message": "order not found"}
            return (200, order) if seen.method == "GET" else self._cancel(order)
        return 404, {"code": 40410000, "message": "endpoint not found"}

    def _submit(self, seen: Seen) -> Answer:
        body = seen.body if isinstance(seen.body, dict) else {}
        problem = _invalid_order(body)
        if problem:
            return 422, {"code": 40010001, "message": problem}
        client_order_id = str(body.get("client_order_id") or uuid.uuid4())
        if any(o["client_order_id"] == client_order_id for o in self.orders.values()):
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        order = _new_order(body, client_order_id)
        self.orders[order["id"]] = order
        self._outbox.append(("new", {**order, "status": "new", "filled_qty": "0",
                                     "filled_avg_price": None, "filled_at": None}))
        if order["status"] == "filled":
            self._outbox.append(("fill", dict(order)))
        return 200, order

    def _snapshots(self, seen: Seen) -> dict[str, Any]:
        """Alpaca's snapshot per known symbol; an unknown symbol is left out, as Alpaca does."""
        now = _now()
        answer: dict[str, Any] = {}
        for symbol in seen.query.get("symbols", "").split(","):
            if symbol in self.quotes:
                bid, ask, last = self.quotes[symbol]
                answer[symbol] = {
                    "latestQuote": {"bp": bid, "bs": 1, "ap": ask, "as": 1, "t": now},
                    "latestTrade": {"p": last, "s": 10, "t": now},
                }
        return answer

    def _list(self, seen: Seen) -> Answer:
        wanted = seen.query.get("status", "open")
        chosen = [
            o
            for o in self.orders.values()
            if wanted == "all" or (o["status"] in OPEN) == (wanted == "open")
        ]
        return 200, chosen[: int(seen.query.get("limit", "50"))]

    def _by_client_order_id(self, seen: Seen) -> Answer:
        wanted = seen.query.get("client_order_id")
        for order in self.orders.values():
            if order["client_order_id"] == wanted:
                return 200, order
        return 404, {"code": 40410000, "message": "order not found"}

    def _cancel(self, order: dict[str, Any]) -> Answer:
        if order["status"] not in OPEN:
            return 422, {
                "code": 42210000,
                "message": f'order is already in "{order["status"]}" state',
            }
        now = _now()
        order.update(status="canceled", canceled_at=now, updated_at=now)
        self._outbox.append(("canceled", dict(order)))
        return 204, None


def _invalid_order(body: dict[str, Any]) -> str | None:
    """Alpaca's checks that matter here; the message of the 422, or None."""
    kind = body.get("type")
    for name in ("symbol", "side", "type", "time_in_force"):
        if not body.get(name):
            return f"{name} is required"
    if kind not in ORDER_TYPES:
        return f"invalid order type: {kind}"
    if body["side"] not in {"buy", "sell"}:
        return "invalid side"
    if body["time_in_force"] not in TIME_IN_FORCE:
        return "invalid time_in_force"
    if not _positive(body.get("qty")):
        return "qty must be > 0"
    for name, needed in (
        ("limit_price", kind in {"limit", "stop_limit"}),
        ("stop_price", kind in {"stop", "stop_limit"}),
    ):
        if needed and not _positive(body.get(name)):
            return f"{name} is required for {kind} orders"
        if not needed and body.get(name) is not None:
            return f"{name} is not allowed for {kind} orders"
    if len(str(body.get("client_order_id", ""))) > 128:
        return "client_order_id must be no more than 128 characters"
    return None


def _positive(value: Any) -> bool:
    try:
        return value is not None and Decimal(str(value)) > 0
    except InvalidOperation:
        return False


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _new_order(body: dict[str, Any], client_order_id: str) -> dict[str, Any]:
    """An order as Alpaca returns it; every field alpaca-py's Order model requires is set."""
    now = _now()
    filled = body["type"] == "market"
    return {
        "id": str(uuid.uuid4()),
        "client_order_id": client_order_id,
        "created_at": now,
        "updated_at": now,
        "submitted_at": now,
        "filled_at": now if filled else None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, str(body["symbol"]))),
        "symbol": body["symbol"],
        "asset_class": "us_equity",
        "notional": None,
        "qty": _text(body["qty"]),
        "filled_qty": _text(body["qty"]) if filled else "0",
        "filled_avg_price": FILL_PRICE if filled else None,
        "order_class": "",
        "order_type": body["type"],
        "type": body["type"],
        "side": body["side"],
        "position_intent": "buy_to_open" if body["side"] == "buy" else "sell_to_close",
        "time_in_force": body["time_in_force"],
        "limit_price": _text(body.get("limit_price")),
        "stop_price": _text(body.get("stop_price")),
        "status": "filled" if filled else "new",
        "extended_hours": bool(body.get("extended_hours", False)),
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _clock() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "timestamp": now.isoformat(),
        "is_open": True,
        "next_open": (now + timedelta(days=1)).isoformat(),
        "next_close": (now + timedelta(hours=1)).isoformat(),
    }


def _account() -> dict[str, Any]:
    return {
        "id": "00000000-0000-4000-8000-000000000001",
        "account_number": "PA0STANDIN",
        "status": "ACTIVE",
        "currency": "USD",
        "buying_power": "400000",
        "cash": "100000",
        "portfolio_value": "100000",
        "trading_blocked": False,
        "account_blocked": False,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: AlpacaStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        # A client that gave up (timed out) before a held answer was written is expected.
        if exc is not None and not isinstance(exc, ConnectionError):
            self.standin.errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `standin.requests` instead."""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw, parse_float=Decimal) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        seen = Seen(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            body=body,
            authenticated=bool(
                self.headers.get("APCA-API-KEY-ID") and self.headers.get("APCA-API-SECRET-KEY")
            ),
        )
        standin = self.server.standin
        standin.track(+1)
        try:
            answer, hold = standin.handle(seen)
            if hold:
                standin.wait_released(hold)
        finally:
            # Before the answer goes out: the client may send its next request right after it.
            standin.track(-1)
        if isinstance(answer, Fault):
            self._write(answer.status, answer.body.encode(), answer.content_type, answer.headers)
        else:
            status, payload = answer
            data = b"" if payload is None else json.dumps(payload).encode()
            self._write(status, data, "application/json", ())

    def _write(
        self, status: int, data: bytes, content_type: str, headers: tuple[tuple[str, str], ...]
    ) -> None:
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
