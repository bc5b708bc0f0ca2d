"""The sim broker's book: open orders against the sim market, and the updates they produce.

Cheap by design, since the sim is the embedded default and the benchmarks' broker: an order
that can trade at once never rests; resting orders are looked at by ONE timer per symbol
(every `interval` seconds while that symbol has any), never a task per order. Only open orders
are kept; an order that ends is handed to `on_end` and forgotten here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from twap_schemas.common import TimeInForce
from worker.brokers.base import OrderRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.brokers.sim_market import Market, step
from worker.core.fills import average, notional_of


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Resting:
    order: OrderRequest
    broker_order_id: str
    expires_at: datetime | None
    filled_qty: int = 0
    notional: Decimal = Decimal(0)
    triggered: bool = False

    def view(self, lifecycle: Lifecycle, at: datetime, reason: str | None = None) -> OrderView:
        return OrderView(
            client_order_id=self.order.client_order_id,
            broker_order_id=self.broker_order_id,
            lifecycle=lifecycle,
            filled_qty=self.filled_qty,
            avg_fill_price=average(self.notional, self.filled_qty),
            at=at,
            reason=reason,
        )


class SimBook:
    def __init__(
        self,
        market: Market,
        *,
        chunk: int = 0,
        interval: float = 0.2,
        clock: Callable[[], datetime] = _utcnow,
        on_end: Callable[[OrderView], None] = lambda view: None,
        on_view: Callable[[OrderView], None] = lambda view: None,
    ) -> None:
        self.market = market
        self.chunk = chunk
        self.interval = interval
        self.clock = clock
        self.on_end = on_end
        self.on_view = on_view  # every view published (each fill, each end), before on_end
        self._open: dict[str, _Resting] = {}  # by client_order_id
        self._symbols: dict[str, set[str]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._subscribers: set[asyncio.Queue[OrderView]] = set()

    def __len__(self) -> int:
        return len(self._open)

    def place(self, order: OrderRequest, broker_order_id: str) -> OrderView:
        """Book an order and give it its first look at the market; return where it stands."""
        now = self.clock()
        resting = _Resting(order, broker_order_id, _expiry(order.time_in_force, now))
        view = self._look(resting, now, first_look=True)
        if not view.ended:
            self._open[order.client_order_id] = resting
            self._symbols.setdefault(order.symbol, set()).add(order.client_order_id)
            self._arm(order.symbol)
        return view

    def restore(self, order: OrderRequest, broker_order_id: str, received: datetime,
                filled_qty: int, notional: Decimal) -> None:
        """Put back an order that was open when the book was last written (a restart on the
        ledger): it rests with what it had filled, and the next tick looks at it."""
        resting = _Resting(order, broker_order_id, _expiry(order.time_in_force, received),
                           filled_qty, notional)
        self._open[order.client_order_id] = resting
        self._symbols.setdefault(order.symbol, set()).add(order.client_order_id)
        self._arm(order.symbol)

    def subscribe(self) -> asyncio.Queue[OrderView]:
        """A queue that receives every view published from now on (`unsubscribe` it)."""
        queue: asyncio.Queue[OrderView] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[OrderView]) -> None:
        self._subscribers.discard(queue)

    def cancel(
        self, client_order_id: str, reason: str = "canceled at the broker"
    ) -> OrderView | None:
        """Cancel an open order; None when it is not open (filled, ended, or unknown)."""
        resting = self._open.get(client_order_id)
        if resting is None:
            return None
        return self._end(resting, Lifecycle.CLOSED, self.clock(), reason)

    def view(self, client_order_id: str) -> OrderView | None:
        """The current view of an open order; None when it is not open."""
        resting = self._open.get(client_order_id)
        return None if resting is None else resting.view(Lifecycle.WORKING, self.clock())

    async def updates(self) -> AsyncIterator[OrderView]:
        """Every view change from now on (each fill, each end), in the order they happen."""
        queue: asyncio.Queue[OrderView] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _look(self, resting: _Resting, now: datetime, *, first_look: bool) -> OrderView:
        order = resting.order
        if resting.expires_at is not None and now >= resting.expires_at:
            return self._end(resting, Lifecycle.CLOSED, now, "expired at the broker (day order)")
        result = step(
            side=order.side,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            remaining=order.qty - resting.filled_qty,
            triggered=resting.triggered,
            first_look=first_look,
            chunk=self.chunk,
            quote=self.market.quote(order.symbol, now),
        )
        resting.triggered = result.triggered
        if result.fill_qty:
            assert result.price is not None
            resting.filled_qty += result.fill_qty
            resting.notional += notional_of(result.fill_qty, result.price)
        if result.done == "filled":
            return self._end(resting, Lifecycle.FILLED, now, None)
        if result.done is not None:
            return self._end(resting, Lifecycle.CLOSED, now, result.done.removeprefix("canceled: "))
        view = resting.view(Lifecycle.WORKING, now)
        if result.fill_qty:
            self._publish(view)
        return view

    def _end(
        self, resting: _Resting, lifecycle: Lifecycle, now: datetime, reason: str | None
    ) -> OrderView:
        cid = resting.order.client_order_id
        if self._open.pop(cid, None) is not None:
            symbol_orders = self._symbols.get(resting.order.symbol)
            if symbol_orders is not None:
                symbol_orders.discard(cid)
                if not symbol_orders:
                    del self._symbols[resting.order.symbol]
        view = resting.view(lifecycle, now, reason)
        self._publish(view)
        self.on_end(view)
        return view

    def _publish(self, view: OrderView) -> None:
        self.on_view(view)
        for queue in self._subscribers:
            queue.put_nowait(view)

    def _arm(self, symbol: str) -> None:
        if symbol in self._timers:
            return
        loop = asyncio.get_running_loop()
        self._timers[symbol] = loop.call_later(self.interval, self._tick, symbol)

    def _tick(self, symbol: str) -> None:
        del self._timers[symbol]
        now = self.clock()
        for cid in list(self._symbols.get(symbol, ())):
            resting = self._open.get(cid)
            if resting is not None:
                self._look(resting, now, first_look=False)
        if self._symbols.get(symbol):
            self._arm(symbol)


def _expiry(time_in_force: TimeInForce, now: datetime) -> datetime | None:
    """A day order ends at the end of its UTC day (the sim trades around the clock)."""
    if time_in_force is TimeInForce.DAY:
        return datetime.combine(now.date() + timedelta(days=1), time(), UTC)
    return None
