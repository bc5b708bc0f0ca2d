"""Alpaca's `trade_updates` stream, run by the adapter as one supervised task in the worker's
event loop and fanned out to every `updates()` subscription.

alpaca-py's TradingStream owns the wire protocol (connect, authenticate, listen, route
`trade_updates` to the handler given to `subscribe_trade_updates`). Its own `run()` wants a
thread and an event loop of its own, and its reconnect loop neither says when it reconnected
nor stops promptly (it looks at a stop request between 5-second reads). So the task here
drives the same TradingStream step by step: it knows when the stream is listening again
(every subscriber then gets a Resync: updates may have been missed), waits a capped
exponential backoff between attempts, and stops at once when cancelled by `close()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from worker.brokers.alpaca_status import is_known_event
from worker.brokers.alpaca_views import order_view
from worker.brokers.orders import OrderView, Resync

log = logging.getLogger(__name__)

PAPER_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_STREAM_URL = "wss://api.alpaca.markets/stream"
# The private parts of TradingStream this module drives; checked when the adapter is built.
STREAM_STEPS = ("_connect", "_auth", "_subscribe_trade_updates", "_dispatch", "close", "_ws")

_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def trade_stream_url(stream_url: str | None, base_url: str | None, paper: bool) -> str:
    """ALPACA_STREAM_URL when set; else ALPACA_BASE_URL's host with ws:// for http:// and
    wss:// for https:// and the path /stream; else Alpaca's own (paper or live)."""
    if stream_url and stream_url.strip():
        return stream_url.strip()
    if base_url and base_url.strip():
        parts = urlsplit(base_url.strip())
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.netloc:
            raise ValueError(
                f"ALPACA_BASE_URL {base_url!r}: expected an http:// or https:// URL "
                "(or set ALPACA_STREAM_URL)"
            )
        return urlunsplit((scheme, parts.netloc, "/stream", "", ""))
    return PAPER_STREAM_URL if paper else LIVE_STREAM_URL


def backoff(failures: int, first: float, cap: float) -> float:
    """Seconds to wait before the next attempt after `failures` failed ones in a row (>= 1):
    first, 2 * first, 4 * first, ... never above cap."""
    exponent: int = min(max(failures - 1, 0), 30)
    return float(min(cap, first * 2**exponent))


class _End:
    """Put in a subscriber's queue by close(): the subscription ends."""


_END = _End()


class _Subscriber:
    """One updates() subscription's queue. Bounded: when a consumer falls that far behind, its
    backlog is replaced by one Resync (it reconciles instead of reading stale updates)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: deque[OrderView | Resync | _End] = deque()
        self.wake = asyncio.Event()

    def put(self, item: OrderView | Resync | _End) -> None:
        if len(self.items) >= self.limit and not isinstance(item, _End):
            self.items.clear()
            item = Resync()
            log.warning("broker.updates_overflow limit=%d (backlog replaced by a resync)",
                        self.limit)
        self.items.append(item)
        self.wake.set()

    async def get(self) -> OrderView | Resync | _End:
        while not self.items:
            self.wake.clear()
            await self.wake.wait()
        return self.items.popleft()


class TradeUpdates:
    """The supervised `trade_updates` stream of one adapter and its subscriptions."""

    def __init__(
        self,
        stream: Any,
        *,
        url: str,
        secrets: Iterable[str],
        first_wait: float = 1.0,
        wait_cap: float = 30.0,
        handshake_seconds: float = 10.0,
        queue_limit: int = 10_000,
    ) -> None:
        self._stream = stream
        self._url = _safe_url(url)
        self._secrets = tuple(s for s in secrets if s)
        self.first_wait = first_wait
        self.wait_cap = wait_cap
        self.handshake_seconds = handshake_seconds
        self.queue_limit = queue_limit
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()  # the first connection attempt ended, either way
        self._closed = False
        self._unknown_events: set[str] = set()
        self.connections = 0  # times the stream reached "listening"
        stream.subscribe_trade_updates(self._on_trade_update)

    async def subscribe(self) -> AsyncGenerator[OrderView | Resync, None]:
        """A new subscription: Resync first, then every update, a Resync after each reconnect.

        The first Resync waits for the stream's first connection attempt (bounded by the
        handshake timeout) so that, when it succeeds, reconciling after it misses nothing; if
        it fails the subscription starts anyway, and the stream's eventual connection brings
        the next Resync. Anything reported before this subscriber joined is covered by the
        reconciliation its first Resync asks for.
        """
        if self._closed:
            return
        self._start()
        await self._attempted.wait()
        subscriber = _Subscriber(self.queue_limit)
        self._subscribers.add(subscriber)
        try:
            yield Resync()
            while True:
                item = await subscriber.get()
                if isinstance(item, _End):
                    return
                yield item
        finally:
            self._subscribers.discard(subscriber)

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._attempted.set()
        for subscriber in list(self._subscribers):
            subscriber.put(_END)

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._supervise(), name="alpaca-trade-updates"
            )

    async def _supervise(self) -> None:
        failures = 0
        while True:
            wait = self.first_wait
            try:
                async with asyncio.timeout(self.handshake_seconds):
                    await self._open()
                failures = 0
                self.connections += 1
                log.info("broker.stream_listening url=%s", self._url)
                self._attempted.set()
                self._broadcast(Resync())
                await self._receive()
            except Exception as exc:  # every failure of the stream ends in a reconnect
                failures += 1
                wait = backoff(failures, self.first_wait, self.wait_cap)
                log.warning(
                    "broker.stream_lost url=%s error=%s retry_in_s=%.2f",
                    self._url,
                    self._describe(exc),
                    wait,
                )
            finally:
                self._attempted.set()
                await self._close_socket()
            await asyncio.sleep(wait)

    async def _open(self) -> None:
        """Connect, authenticate, ask for trade_updates and wait until the server says it
        listens: only then can a reconciliation miss nothing."""
        stream = self._stream
        await stream._connect()
        await stream._auth()
        await stream._subscribe_trade_updates()
        while True:
            message = _parse(await stream._ws.recv())
            if message.get("stream") == "listening":
                streams = (message.get("data") or {}).get("streams") or []
                if "trade_updates" not in streams:
                    raise ConnectionError(f"the server listens to {streams}, not trade_updates")
                return
            await self._dispatch(message)

    async def _receive(self) -> None:
        while True:
            raw = await self._stream._ws.recv()
            try:
                message = _parse(raw)
            except ValueError:
                log.warning("broker.stream_unreadable_frame (a resync follows)")
                self._broadcast(Resync())
                continue
            await self._dispatch(message)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        # TradingStream routes trade_updates to the handler given to subscribe_trade_updates.
        await self._stream._dispatch(message)

    async def _on_trade_update(self, message: Any) -> None:
        """One trade update (raw JSON) -> an OrderView for every subscriber. Never raises:
        an update that cannot be read becomes a Resync, so the consumer looks orders up."""
        data = message.get("data") if isinstance(message, dict) else None
        event = data.get("event") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(event, str):
            log.warning("broker.stream_update_unreadable problem=no event (a resync follows)")
            self._broadcast(Resync())
            return
        if not is_known_event(event) and event not in self._unknown_events:
            self._unknown_events.add(event)
            log.warning("broker.stream_unknown_event event=%s (the order is looked up)", event)
        try:
            view = order_view(data.get("order"), event=event, at=data.get("timestamp"))
        except ValueError as exc:
            log.warning("broker.stream_update_unreadable event=%s problem=%s (a resync follows)",
                        event, exc)
            self._broadcast(Resync())
            return
        self._broadcast(view)

    def _broadcast(self, item: OrderView | Resync) -> None:
        for subscriber in self._subscribers:
            subscriber.put(item)

    async def _close_socket(self) -> None:
        try:
            await self._stream.close()
        except Exception as exc:  # a socket that will not close cleanly is dropped anyway
            log.debug("broker.stream_close_failed error=%s", type(exc).__name__)
            self._stream._ws = None

    def _describe(self, exc: BaseException) -> str:
        """The error's type and text, short, with the credentials masked should a library
        ever echo them."""
        text = f"{type(exc).__name__}: {exc}"[:300]
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _parse(raw: Any) -> dict[str, Any]:
    message = json.loads(raw)
    if not isinstance(message, dict):
        raise ValueError("a stream message is not a JSON object")
    return message


def _safe_url(url: str) -> str:
    """The URL for logs: no user info, no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def stream_factory_check(stream: Any) -> None:
    """Fail at start-up, with a clear message, when alpaca-py no longer has what this drives."""
    missing = [step for step in STREAM_STEPS if not hasattr(stream, step)]
    if missing:
        raise RuntimeError(
            f"alpaca-py changed: TradingStream has no {', '.join(missing)}; "
            "the trade updates stream cannot be driven"
        )

