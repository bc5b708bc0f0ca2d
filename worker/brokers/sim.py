"""The built-in paper broker: orders against the sim market (`sim_market.py`, `sim_book.py`).

It behaves like a real broker where it matters to the worker: a repeated client_order_id is
refused, orders can be found by client_order_id, open orders can be canceled, and every fill
and end of an order is pushed through `updates()`. Market orders fill at once at the ask (buy)
or the bid (sell), limit and stop orders rest until the market reaches them, `ioc` / `fok`
behave as their names say; with `fill_qty` set, orders fill in chunks, one every
`fill_interval` seconds. Deterministic: a test predicts every fill from the configuration.

With a ledger file it remembers its orders across restarts: one JSON line per order, written
before the submit returns, and one line per fill or end of an order (`"event": "update"`).
The crash tests and benchmarks read the order lines as "what the broker received".

Memory holds only the orders still open (the book of resting orders, one timer per symbol
with any); every order it ever took, open or done, with its fills, is in its on-disk book
(`sim_orders.py`), so a worker that runs for weeks does not grow with the orders it sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from worker.brokers.base import BeforeSend, OrderRequest
from worker.brokers.orders import OrderView, Quote, QuoteUnavailable, Resync
from worker.brokers.sim_book import SimBook
from worker.brokers.sim_market import Market
from worker.brokers.sim_orders import SimOrder, SimOrders, update_line
from worker.core.fills import notional_of
from worker.core.retry import BrokerRejection, DuplicateOrder, TransientBrokerError

__all__ = ["ReceivedOrders", "SimBroker", "SimOrder", "read_fills", "read_ledger"]


@dataclass
class SimBroker:
    """In-process paper broker. `fail_next` queues faults for tests: 'transient', 'reject'."""

    ledger_path: Path | None = None
    latency: float = 0.0
    market: Market = field(default_factory=Market)
    fill_qty: int = 0  # most shares per fill; 0: a marketable order fills whole at once
    fill_interval: float = 0.2  # seconds between two chunks, and between looks at the market
    name: str = "sim"
    attempts: int = 0
    _faults: deque[str] = field(default_factory=deque)
    _book: SimOrders | None = None
    _live: SimBook | None = None
    # Open orders only: broker_order_id → client_order_id (cancel takes the broker's id).
    _open_ids: dict[str, str] = field(default_factory=dict)
    _ledger: int | None = None

    def _open(self) -> tuple[SimOrders, SimBook]:
        """Read the ledger at first use, not at construction: a standby worker builds its broker
        long before it takes over, and must see what the worker it replaces sent."""
        if self._book is not None and self._live is not None:
            return self._book, self._live
        book = self._book = SimOrders()
        live = self._live = SimBook(self.market, chunk=self.fill_qty,
                                    interval=self.fill_interval, on_end=self._ended,
                                    on_view=self._record)
        if self.ledger_path is not None:
            book.load(iter_ledger(self.ledger_path))
            for resting in book.open_orders():
                self._open_ids[resting.broker_order_id] = resting.order.client_order_id
                notional = (Decimal(0) if resting.avg_fill_price is None
                            else notional_of(resting.filled_qty, resting.avg_fill_price))
                live.restore(resting.order, resting.broker_order_id,
                             datetime.fromtimestamp(resting.received_at, UTC),
                             resting.filled_qty, notional)
            self._ledger = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return book, live

    @property
    def open_orders(self) -> dict[str, str]:
        """Orders still working: broker_order_id → client_order_id (what memory holds)."""
        return dict(self._open_ids)

    @property
    def orders(self) -> ReceivedOrders:
        """Every order received, by client_order_id, read from the book (for tests and tools)."""
        return ReceivedOrders(self._open()[0])

    def fail_next(self, *faults: str) -> None:
        """Queue faults for the next submits: 'transient', 'ambiguous', 'reject'.

        'ambiguous' books the order and then fails as a timeout would.
        """
        self._faults.extend(faults)

    async def submit(
        self, order: OrderRequest, before_send: BeforeSend | None = None
    ) -> OrderView:
        book, live = self._open()
        if before_send is not None:  # no limiter here: the order is "sent" right after
            await before_send()
        self.attempts += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._faults.popleft() if self._faults else None
        if fault == "transient":
            raise TransientBrokerError("sim: injected transient failure (503)")
        if fault == "reject":
            raise BrokerRejection("sim: injected rejection (insufficient buying power)")
        if book.has(order.client_order_id):
            raise DuplicateOrder(f"sim: client_order_id {order.client_order_id} must be unique")
        sim_order = SimOrder(order, str(uuid.uuid4()), time.time(), "new")
        self._write(sim_order.ledger_line())
        book.add(sim_order)
        self._open_ids[sim_order.broker_order_id] = order.client_order_id
        view = live.place(order, sim_order.broker_order_id)  # its first look at the market
        if fault == "ambiguous":
            raise TransientBrokerError("sim: booked, but the answer timed out", ambiguous=True)
        return view

    async def find(self, client_order_id: str) -> OrderView | None:
        book, live = self._open()
        working = live.view(client_order_id)
        if working is not None:
            return working
        found = book.get(client_order_id)
        return found.view() if found else None

    async def cancel(self, broker_order_id: str) -> bool:
        _, live = self._open()
        client_order_id = self._open_ids.get(broker_order_id)
        if client_order_id is None:  # unknown, filled or already closed
            return False
        # The CLOSED view goes out through updates() (the book publishes it).
        return live.cancel(client_order_id, "canceled at the worker's request") is not None

    async def updates(self) -> AsyncGenerator[OrderView | Resync, None]:
        _, live = self._open()
        queue = live.subscribe()  # before the Resync: nothing published after it is missed
        try:
            yield Resync()
            while True:
                yield await queue.get()
        finally:
            live.unsubscribe(queue)

    async def quote(self, symbol: str) -> Quote:
        now = datetime.now(UTC)
        try:
            q = self.market.quote(symbol.upper(), now)
        except (ArithmeticError, ValueError) as exc:
            raise QuoteUnavailable(f"sim: no quote for {symbol}: {exc}") from exc
        return Quote(symbol=symbol.upper(), bid=q.bid, ask=q.ask, last=q.last, at=now)

    async def close(self) -> None:
        # The book stays: like a broker's memory, it outlives one worker run in this process
        # (in-process restarts in tests); it is dropped with the SimBroker.
        if self._ledger is not None:
            os.close(self._ledger)
            self._ledger = None

    def _record(self, view: OrderView) -> None:
        """Every fill and end: into the on-disk book (what find answers once it ended) and
        the ledger."""
        if self._book is not None:
            self._book.record(view)
        self._write(update_line(view))

    def _ended(self, view: OrderView) -> None:
        self._open_ids.pop(view.broker_order_id, None)

    def _write(self, line: dict[str, Any]) -> None:
        if self._ledger is None and self.ledger_path is not None and self._book is not None:
            # Used again after close (an in-process restart keeps its broker): reopen.
            self._ledger = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                   0o644)
        if self._ledger is not None:
            os.write(self._ledger, (json.dumps(line) + "\n").encode())


class ReceivedOrders(Mapping[str, SimOrder]):
    """A read-only view of the sim's book: client_order_id → the order, in the order received."""

    def __init__(self, book: SimOrders) -> None:
        self._book = book

    def __getitem__(self, client_order_id: str) -> SimOrder:
        found = self._book.get(client_order_id)
        if found is None:
            raise KeyError(client_order_id)
        return found

    def __contains__(self, client_order_id: object) -> bool:
        return isinstance(client_order_id, str) and self._book.has(client_order_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._book.client_order_ids())

    def __len__(self) -> int:
        return len(self._book)


def iter_ledger(path: Path) -> Iterator[dict[str, Any]]:
    """The order lines of a sim ledger, one at a time (duplicates included, if any)."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                yield json.loads(raw)


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Every order line a sim ledger holds (duplicates included, if any were ever written)."""
    return [line for line in iter_ledger(path) if "event" not in line]


def read_fills(path: Path) -> list[dict[str, Any]]:
    """Every update line (an order's fills and end, cumulative), in the order written."""
    return [line for line in iter_ledger(path) if line.get("event") == "update"]
