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
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from twap_schemas.common import OrderType, Side, TimeInForce
from worker.brokers.base import OrderRequest
from worker.brokers.orders import Lifecycle, OrderView

OPEN_STATUSES = frozenset({"new", "accepted"})
# The book's status of an order that ended, by its lifecycle.
END_STATUS = {Lifecycle.FILLED: "filled", Lifecycle.CLOSED: "canceled"}
# Small: a page it misses comes back from the OS's file cache in microseconds, and the earlier
# 512 KiB filled so slowly (about 20 KiB per 1,000 parents) that it read as growth in a soak.
PAGE_CACHE_KIB = 64

_COLUMNS = (
    "client_order_id, broker_order_id, symbol, side, qty, order_type, time_in_force, "
    "limit_price, stop_price, status, received_at, filled_qty, avg_fill_price, reason, updated_at"
)
_MARKS = ", ".join("?" for _ in _COLUMNS.split(","))
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
    received_at REAL NOT NULL,
    filled_qty INTEGER NOT NULL DEFAULT 0,
    avg_fill_price TEXT,
    reason TEXT,
    updated_at TEXT  -- ISO time of the last fill or the end (the view's `at`)
);
"""


@dataclass(slots=True)
class SimOrder:
    order: OrderRequest
    broker_order_id: str
    received_at: float  # wall clock, seconds since the epoch
    status: str
    filled_qty: int = 0
    avg_fill_price: Decimal | None = None
    reason: str | None = None
    updated_at: datetime | None = None  # the last fill or the end; None: as received

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def view(self, at: datetime | None = None) -> OrderView:
        """The order as the book last recorded it (an open order's live view is the book's
        in memory: `SimBook.view`)."""
        lifecycle = (Lifecycle.WORKING if self.is_open
                     else Lifecycle.FILLED if self.status == "filled" else Lifecycle.CLOSED)
        return OrderView(
            client_order_id=self.order.client_order_id,
            broker_order_id=self.broker_order_id,
            lifecycle=lifecycle,
            filled_qty=self.filled_qty,
            avg_fill_price=self.avg_fill_price,
            at=at or self.updated_at or datetime.fromtimestamp(self.received_at, UTC),
            reason=self.reason,
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
            "filled_qty": self.filled_qty,
            "avg_fill_price": None if self.avg_fill_price is None else str(self.avg_fill_price),
            "reason": self.reason,
            "updated_at": None if self.updated_at is None else self.updated_at.isoformat(),
        }


def status_of(view: OrderView) -> str:
    """The book's status for an order in this view."""
    return END_STATUS.get(view.lifecycle, "new")


def update_line(view: OrderView) -> dict[str, Any]:
    """An order's fills and end as one ledger line (read back by `SimOrders.load`)."""
    return {
        "event": "update",
        "client_order_id": view.client_order_id,
        "status": status_of(view),
        "filled_qty": view.filled_qty,
        "avg_fill_price": None if view.avg_fill_price is None else str(view.avg_fill_price),
        "reason": view.reason,
        "at": view.at.isoformat(),
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
    return SimOrder(order, line["broker_order_id"], float(line["received_at"]), line["status"],
                    int(line.get("filled_qty") or 0), _price(line.get("avg_fill_price")),
                    line.get("reason"),
                    datetime.fromisoformat(line["updated_at"]) if line.get("updated_at") else None)


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
        int(line.get("filled_qty") or 0),
        None if line.get("avg_fill_price") is None else str(line["avg_fill_price"]),
        line.get("reason"),
        line.get("updated_at"),
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
            f"INSERT INTO orders ({_COLUMNS}) VALUES ({_MARKS})",
            _row(order.ledger_line()),
        )

    def load(self, lines: Iterable[dict[str, Any]]) -> None:
        """Record ledger lines in one transaction, in their order: order lines (a repeated
        client_order_id keeps the first) and update lines (`"event": "update"`, an order's
        fills and end: the last one stands)."""
        self._db.execute("BEGIN")
        for line in lines:
            if line.get("event") == "update":
                self._update(line["client_order_id"], line["status"], int(line["filled_qty"]),
                             line.get("avg_fill_price"), line.get("reason"), line.get("at"))
            else:
                self._db.execute(
                    f"INSERT OR IGNORE INTO orders ({_COLUMNS}) VALUES ({_MARKS})", _row(line))
        self._db.execute("COMMIT")

    def record(self, view: OrderView) -> None:
        """An order's fills and, once it ended, its end (what `find` answers for it then)."""
        self._update(view.client_order_id, status_of(view), view.filled_qty,
                     None if view.avg_fill_price is None else str(view.avg_fill_price),
                     view.reason, view.at.isoformat())

    def _update(self, client_order_id: str, status: str, filled_qty: int, avg: str | None,
                reason: str | None, at: str | None) -> None:
        self._db.execute(
            "UPDATE orders SET status = ?, filled_qty = ?, avg_fill_price = ?, reason = ?, "
            "updated_at = ? WHERE client_order_id = ?",
            (status, filled_qty, avg, reason, at, client_order_id),
        )

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
