"""The Protocol every broker adapter implements, and the data it speaks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from twap_schemas.common import OrderType, Side, TimeInForce


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
    """What the broker knows about an order."""

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
    - `cancel` returns True when the order was open and is now being canceled.
    """

    name: str

    async def submit(
        self, order: OrderRequest, before_send: BeforeSend | None = None
    ) -> BrokerOrder: ...

    async def find(self, client_order_id: str) -> BrokerOrder | None: ...

    async def cancel(self, broker_order_id: str) -> bool: ...

    async def close(self) -> None: ...
