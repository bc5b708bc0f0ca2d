"""The built-in paper broker: accepts orders in-process, fills market orders at once.

It behaves like a real broker where it matters to the worker: a repeated client_order_id is
refused, orders can be found by client_order_id, open orders can be canceled. With a ledger
file it remembers its orders across restarts (one JSON line per order, written before the
submit returns), which the crash tests and benchmarks read as "what the broker received".
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas.common import OrderType, Side, TimeInForce
from worker.brokers.base import BeforeSend, BrokerOrder, OrderRequest
from worker.core.retry import BrokerRejection, DuplicateOrder, TransientBrokerError

SIM_FILL_PRICE = Decimal("100.00")


@dataclass(slots=True)
class SimOrder:
    order: OrderRequest
    broker_order_id: str
    received_at: float  # wall clock, seconds since the epoch
    status: str

    def view(self) -> BrokerOrder:
        return BrokerOrder(
            broker_order_id=self.broker_order_id,
            client_order_id=self.order.client_order_id,
            status=self.status,
            is_open=self.status in {"new", "accepted"},
        )


@dataclass
class SimBroker:
    """In-process paper broker. `fail_next` queues faults for tests: 'transient', 'reject'."""

    ledger_path: Path | None = None
    latency: float = 0.0
    name: str = "sim"
    orders: dict[str, SimOrder] = field(default_factory=dict)
    attempts: int = 0
    _faults: deque[str] = field(default_factory=deque)
    _ledger: int | None = None
    _opened: bool = False

    def _open(self) -> None:
        """Read the ledger at first use, not at construction: a standby worker builds its broker
        long before it takes over, and must see what the worker it replaces sent."""
        if self._opened:
            return
        self._opened = True
        if self.ledger_path is not None:
            self._load_ledger(self.ledger_path)
            self._ledger = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def fail_next(self, *faults: str) -> None:
        """Queue faults for the next submits: 'transient', 'ambiguous', 'reject'.

        'ambiguous' books the order and then fails as a timeout would.
        """
        self._faults.extend(faults)

    async def submit(
        self, order: OrderRequest, before_send: BeforeSend | None = None
    ) -> BrokerOrder:
        self._open()
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
        if order.client_order_id in self.orders:
            raise DuplicateOrder(f"sim: client_order_id {order.client_order_id} must be unique")
        booked = self._book(order)
        if fault == "ambiguous":
            raise TransientBrokerError("sim: booked, but the answer timed out", ambiguous=True)
        return booked.view()

    async def find(self, client_order_id: str) -> BrokerOrder | None:
        self._open()
        found = self.orders.get(client_order_id)
        return found.view() if found else None

    async def cancel(self, broker_order_id: str) -> bool:
        self._open()
        for sim_order in self.orders.values():
            if sim_order.broker_order_id == broker_order_id:
                if sim_order.status in {"new", "accepted"}:
                    sim_order.status = "canceled"
                    return True
                return False
        return False

    async def close(self) -> None:
        if self._ledger is not None:
            os.close(self._ledger)
            self._ledger = None

    def _book(self, order: OrderRequest) -> SimOrder:
        # Market orders fill at once; priced orders rest, as they would at a real venue.
        status = "filled" if order.order_type is OrderType.MARKET else "new"
        sim_order = SimOrder(order, str(uuid.uuid4()), time.time(), status)
        self.orders[order.client_order_id] = sim_order
        if self._ledger is not None:
            line = {
                "client_order_id": order.client_order_id,
                "broker_order_id": sim_order.broker_order_id,
                "symbol": order.symbol,
                "side": order.side.value,
                "qty": order.qty,
                "order_type": order.order_type.value,
                "time_in_force": order.time_in_force.value,
                "limit_price": None if order.limit_price is None else str(order.limit_price),
                "stop_price": None if order.stop_price is None else str(order.stop_price),
                "status": status,
                "received_at": sim_order.received_at,
            }
            os.write(self._ledger, (json.dumps(line) + "\n").encode())
        return sim_order

    def _load_ledger(self, path: Path) -> None:
        for row in read_ledger(path):
            order = OrderRequest(
                client_order_id=row["client_order_id"],
                symbol=row["symbol"],
                side=Side(row["side"]),
                qty=row["qty"],
                order_type=OrderType(row["order_type"]),
                time_in_force=TimeInForce(row.get("time_in_force", "day")),
                limit_price=_price(row.get("limit_price")),
                stop_price=_price(row.get("stop_price")),
            )
            self.orders[order.client_order_id] = SimOrder(
                order, row["broker_order_id"], row["received_at"], row["status"]
            )


def _price(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Every order line a sim ledger holds (duplicates included, if any were ever written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
