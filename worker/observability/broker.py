"""A Broker that times every call it passes on, so the executor needs no timing code."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from worker.brokers.base import BeforeSend, Broker, NotSent, OrderRequest
from worker.brokers.orders import OrderView, Quote, Resync
from worker.core.retry import BrokerRejection, DuplicateOrder, TransientBrokerError
from worker.observability.metrics import WorkerMetrics

T = TypeVar("T")


def result_of(exc: BaseException) -> str:
    """The `result` label of a broker call that raised `exc` (one that returned is "ok")."""
    if isinstance(exc, BrokerRejection):
        return "rejected"
    if isinstance(exc, DuplicateOrder):
        return "duplicate"
    if isinstance(exc, TransientBrokerError):
        return "transient"
    return "error"


class TimedBroker:
    """Wraps a Broker; observes `twap_broker_call_seconds{operation, result}`."""

    def __init__(
        self,
        inner: Broker,
        metrics: WorkerMetrics,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._metrics = metrics
        self._timer = timer

    async def submit(
        self, order: OrderRequest, before_send: BeforeSend | None = None
    ) -> OrderView:
        return await self._timed("submit", self.inner.submit(order, before_send))

    async def find(self, client_order_id: str) -> OrderView | None:
        return await self._timed("find", self.inner.find(client_order_id))

    async def cancel(self, broker_order_id: str) -> bool:
        return await self._timed("cancel", self.inner.cancel(broker_order_id))

    def updates(self) -> AsyncIterator[OrderView | Resync]:
        return self.inner.updates()  # a stream, not a call: nothing to time

    async def quote(self, symbol: str) -> Quote:
        return await self._timed("quote", self.inner.quote(symbol))

    async def close(self) -> None:
        await self.inner.close()

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        start = self._timer()
        try:
            value = await call
        except NotSent:
            raise  # a guard stopped it before it went out: no broker call to time
        except Exception as exc:
            self._metrics.broker_call(operation, result_of(exc), self._timer() - start)
            raise
        self._metrics.broker_call(operation, "ok", self._timer() - start)
        return value
