"""The built-in paper broker: accepts orders in-process, fills market orders at once.

It behaves like a real broker where it matters to the worker: a repeated client_order_id is
refused, orders can be found by client_order_id, open orders can be canceled. With a ledger
file it remembers its orders across restarts (one JSON line per order, written before the
submit returns), which the crash tests and benchmarks read as "what the broker received".

Memory holds only the orders still open (resting limit and stop orders); every order it ever
took, open or done, is in its book (`sim_orders.py`), on disk, so a worker that runs for weeks
does not grow with the orders it sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from twap_schemas.common import OrderType
from worker.brokers.base import BeforeSend, BrokerOrder, OrderRequest
from worker.brokers.sim_orders import SimOrder, SimOrders
from worker.core.retry import BrokerRejection, DuplicateOrder, TransientBrokerError

SIM_FILL_PRICE = Decimal("100.00")

__all__ = ["SIM_FILL_PRICE", "ReceivedOrders", "SimBroker", "SimOrder", "read_ledger"]


@dataclass
class SimBroker:
    """In-process paper broker. `fail_next` queues faults for tests: 'transient', 'reject'."""

    ledger_path: Path | None = None
    latency: float = 0.0
    name: str = "sim"
    attempts: int = 0
    open_orders: dict[str, SimOrder] = field(default_factory=dict)  # by broker_order_id
    _faults: deque[str] = field(default_factory=deque)
    _book: SimOrders | None = None
    _ledger: int | None = None

    def _open(self) -> SimOrders:
        """Read the ledger at first use, not at construction: a standby worker builds its broker
        long before it takes over, and must see what the worker it replaces sent."""
        if self._book is not None:
            return self._book
        book = self._book = SimOrders()
        if self.ledger_path is not None:
            book.load(iter_ledger(self.ledger_path))
            self.open_orders.update((o.broker_order_id, o) for o in book.open_orders())
            self._ledger = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return book

    @property
    def orders(self) -> ReceivedOrders:
        """Every order received, by client_order_id, read from the book (for tests and tools)."""
        return ReceivedOrders(self._open())

    def fail_next(self, *faults: str) -> None:
        """Queue faults for the next submits: 'transient', 'ambiguous', 'reject'.

        'ambiguous' books the order and then fails as a timeout would.
        """
        self._faults.extend(faults)

    async def submit(
        self, order: OrderRequest, before_send: BeforeSend | None = None
    ) -> BrokerOrder:
        book = self._open()
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
        booked = self._book_order(book, order)
        if fault == "ambiguous":
            raise TransientBrokerError("sim: booked, but the answer timed out", ambiguous=True)
        return booked.view()

    async def find(self, client_order_id: str) -> BrokerOrder | None:
        found = self._open().get(client_order_id)
        return found.view() if found else None

    async def cancel(self, broker_order_id: str) -> bool:
        book = self._open()
        working = self.open_orders.pop(broker_order_id, None)
        if working is None:  # unknown, filled or already canceled
            return False
        working.status = "canceled"
        book.set_status(working.order.client_order_id, working.status)
        return True

    async def close(self) -> None:
        # The book stays: like a broker's memory, it outlives one worker run in this process
        # (in-process restarts in tests); it is dropped with the SimBroker.
        if self._ledger is not None:
            os.close(self._ledger)
            self._ledger = None

    def _book_order(self, book: SimOrders, order: OrderRequest) -> SimOrder:
        # Market orders fill at once; priced orders rest, as they would at a real venue.
        status = "filled" if order.order_type is OrderType.MARKET else "new"
        sim_order = SimOrder(order, str(uuid.uuid4()), time.time(), status)
        line = sim_order.ledger_line()
        if self._ledger is not None:
            os.write(self._ledger, (json.dumps(line) + "\n").encode())
        book.add(sim_order)
        if sim_order.is_open:
            self.open_orders[sim_order.broker_order_id] = sim_order
        return sim_order


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
    return list(iter_ledger(path))
