"""The broker's view of one order, as every adapter reports it: where it is in its life and
what it has filled (cumulative figures, which make every update safe to apply twice)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Lifecycle(StrEnum):
    WORKING = "working"  # at the broker, may still fill
    FILLED = "filled"  # ended, every share filled
    CLOSED = "closed"  # ended before filling completely
    UNKNOWN = "unknown"  # a status we do not know: look the order up


@dataclass(frozen=True, slots=True)
class OrderView:
    client_order_id: str
    broker_order_id: str
    lifecycle: Lifecycle
    filled_qty: int
    avg_fill_price: Decimal | None
    at: datetime
    reason: str | None = None  # why it closed, for CLOSED

    @property
    def ended(self) -> bool:
        return self.lifecycle in (Lifecycle.FILLED, Lifecycle.CLOSED)


@dataclass(frozen=True, slots=True)
class Resync:
    """First item of every updates() subscription and after every reconnect."""


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    at: datetime

    @property
    def reference(self) -> Decimal | None:
        """Mid (bid + ask) / 2 when both are > 0, else last, else None."""
        if self.bid is not None and self.ask is not None and self.bid > 0 and self.ask > 0:
            return (self.bid + self.ask) / 2
        return self.last


class QuoteUnavailable(Exception):
    """No usable quote for a symbol; the message says which and why."""
