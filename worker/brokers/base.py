"""The Protocol every broker adapter implements, and the data it speaks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from twap_schemas.common import OrderType, Side, TimeInForce
from worker.brokers.orders import OrderView, Quote, Resync


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One child order, as the worker asks a broker to place it."""

    client_order_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """What the broker knows about an order (v1). Removed by the Broker Protocol v2: only the
    sim adapter and the executor still use it until they move to OrderView."""

    broker_order_id: str
    client_order_id: str
    status: str
    is_open: bool


class NotSent(Exception):
    """Raised by a `before_send` guard: the order was not sent. Adapters let it through as is."""


# Runs after every wait an adapter imposes, right before the request goes on the wire.
BeforeSend = Callable[[], Awaitable[None]]


class Broker(Protocol):
    """Place, find and cancel orders. Failures raise the classes of `worker.core.retry`.

    - `submit` raises BrokerRejection (refused; never retried), DuplicateOrder (the broker
      already has this client_order_id) or TransientBrokerError (retry; `ambiguous` when the
      order may have arrived anyway). `before_send`, when given, is awaited after the adapter's
      last wait (rate limit, a free connection) and immediately before the order is sent; if
      it raises (NotSent), nothing is sent and its exception propagates unchanged.
    - `find` returns None only when the broker answered that it has no order with that
      client_order_id; anything it cannot tell (a timeout, an error page) raises.
    - `cancel` returns True when the order was open and a cancel was requested. The order's
      final view (CLOSED, or FILLED when the fill won the race) arrives through `updates()`
      and `find()`.
    - `submit` and `find` return the broker's OrderView (cumulative filled qty and average).
    - `updates()`: each call is a new independent subscription that never ends until
      `close()`. Its first item is Resync(), and again after every reconnect of an
      underlying stream ("updates may have been missed; reconcile with find()"); then
      OrderView items in the order the broker reported them (possibly stale or repeated).
    - `quote` raises QuoteUnavailable with a clear message when no quote can be had.
    """

    name: str

    async def submit(
        self, order: OrderRequest, before_send: BeforeSend | None = None
    ) -> OrderView: ...

    async def find(self, client_order_id: str) -> OrderView | None: ...

    async def cancel(self, broker_order_id: str) -> bool: ...

    def updates(self) -> AsyncIterator[OrderView | Resync]: ...

    async def quote(self, symbol: str) -> Quote: ...

    async def close(self) -> None: ...
