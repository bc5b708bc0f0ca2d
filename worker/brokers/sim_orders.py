"""The sim broker's book of every order it ever received, kept on disk, not in the heap.

A broker must refuse a client_order_id it has seen before, for as long as it runs, and answer a
lookup of any order it took. Holding every order as Python objects made a long-running worker
grow by about 1 KiB per parent, forever. The book is a private SQLite database (Python's
`sqlite3`) in a temporary file that SQLite deletes itself, even after a kill -9: its page
cache is capped, so memory stays flat however many orders it holds, and a lookup by
client_order_id is one primary-key probe (microseconds).
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from twap_schemas.common import OrderType, Side, TimeInForce
from worker.brokers.base import BrokerOrder, OrderRequest

OPEN_STATUSES = frozenset({"new", "accepted"})
# Small: a page it misses comes back from the OS's file cache in microseconds, and the earlier
# 512 KiB filled so slowly (about 20 KiB per 1,000 parents) that it read as growth in a soak.
PAGE_CACHE_KIB = 64

_COLUMNS = (
    "client_order_id, broker_order_id, symbol, side, qty, order_type, time_in_force, "
    "limit_price, stop_price, status, received_at"
)
_SCHEMA = """
CREATE TABLE orders (
    seq INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE,
    broker_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty INTEGER NOT NULL,
    order_type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    limit_price TEXT,
    stop_price TEXT,
    status TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""


@dataclass(slots=True)
class SimOrder:
    order: OrderRequest
    broker_order_id: str
    received_at: float  # wall clock, seconds since the epoch
    status: str

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def view(self) -> BrokerOrder:
        return BrokerOrder(
            broker_order_id=self.broker_order_id,
            client_order_id=self.order.client_order_id,
            status=self.status,
            is_open=self.is_open,
        )

    def ledger_line(self) -> dict[str, Any]:
        """The order as one line of the sim ledger (the JSONL file that survives restarts)."""
        o = self.order
        return {
            "client_order_id": o.client_order_id,
            "broker_order_id": self.broker_order_id,
            "symbol": o.symbol,
            "side": o.side.value,
            "qty": o.qty,
            "order_type": o.order_type.value,
            "time_in_force": o.time_in_force.value,
            "limit_price": None if o.limit_price is None else str(o.limit_price),
            "stop_price": None if o.stop_price is None else str(o.stop_price),
            "status": self.status,
            "received_at": self.received_at,
        }


def _price(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def order_from_line(line: dict[str, Any]) -> SimOrder:
    """A SimOrder from a ledger line or a book row (the same fields)."""
    order = OrderRequest(
        client_order_id=line["client_order_id"],
        symbol=line["symbol"],
        side=Side(line["side"]),
        qty=int(line["qty"]),
        order_type=OrderType(line["order_type"]),
        time_in_force=TimeInForce(line.get("time_in_force") or "day"),
        limit_price=_price(line.get("limit_price")),
        stop_price=_price(line.get("stop_price")),
    )
    return SimOrder(order, line["broker_order_id"], float(line["received_at"]), line["status"])


def _row(line: dict[str, Any]) -> tuple[Any, ...]:
    return (
        line["client_order_id"],
        line["broker_order_id"],
        line["symbol"],
        line["side"],
        line["qty"],
        line["order_type"],
        line.get("time_in_force") or "day",
        None if line.get("limit_price") is None else str(line["limit_price"]),
        None if line.get("stop_price") is None else str(line["stop_price"]),
        line["status"],
        line["received_at"],
    )


class SimOrders:
    """Every order the sim received, by client_order_id, in the order received."""

    def __init__(self) -> None:
        # "" = a private temporary database file, unlinked by SQLite as soon as it is open.
        # Used from the event loop only; no call awaits while it holds the connection.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        self._db.execute("PRAGMA journal_mode = OFF")  # nothing here outlives the process
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(_SCHEMA)
        self._db.row_factory = sqlite3.Row
        self._closer = weakref.finalize(self, self._db.close)  # closed with the book

    def add(self, order: SimOrder) -> None:
        """Record a new order; the caller has checked that its client_order_id is new."""
        self._db.execute(
            f"INSERT INTO orders ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _row(order.ledger_line()),
        )

    def load(self, lines: Iterable[dict[str, Any]]) -> None:
        """Record ledger lines in one transaction; a repeated client_order_id keeps the first."""
        self._db.execute("BEGIN")
        self._db.executemany(
            f"INSERT OR IGNORE INTO orders ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_row(line) for line in lines),
        )
        self._db.execute("COMMIT")

    def has(self, client_order_id: str) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return found is not None

    def get(self, client_order_id: str) -> SimOrder | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else order_from_line(dict(row))

    def set_status(self, client_order_id: str, status: str) -> None:
        self._db.execute(
            "UPDATE orders SET status = ? WHERE client_order_id = ?", (status, client_order_id)
        )

    def open_orders(self) -> Iterator[SimOrder]:
        """Orders still working (after loading a ledger: the ones to keep in memory)."""
        marks = ", ".join("?" for _ in OPEN_STATUSES)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM orders WHERE status IN ({marks}) ORDER BY seq",
            tuple(OPEN_STATUSES),
        )
        for row in rows:
            yield order_from_line(dict(row))

    def client_order_ids(self) -> list[str]:
        return [
            row[0] for row in self._db.execute("SELECT client_order_id FROM orders ORDER BY seq")
        ]

    def __len__(self) -> int:
        count = self._db.execute("SELECT count(*) FROM orders").fetchone()
        return int(count[0])

    def close(self) -> None:
        self._closer()
