"""The sim broker's market: deterministic quotes and the matching rule for each order type.

Pure: no clock, no I/O. The sim broker asks for a quote at a given instant and steps its
resting orders against it, so a test can predict every fill from the configuration alone.
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from twap_schemas.common import OrderType, Side, TimeInForce

CENT = Decimal("0.01")
BPS = Decimal(10_000)
MIN_NAME_PRICE = 10
MAX_NAME_PRICE = 500


@dataclass(frozen=True, slots=True)
class Quote:
    bid: Decimal
    ask: Decimal
    last: Decimal

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


def name_price(symbol: str) -> Decimal:
    """A fixed price for an unlisted symbol, from its name: 10.00 to 500.00 in cents."""
    digest = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    cents = MIN_NAME_PRICE * 100 + digest % ((MAX_NAME_PRICE - MIN_NAME_PRICE) * 100 + 1)
    return Decimal(cents) / 100


@dataclass(slots=True)
class _Walk:
    """A seeded Gaussian random walk in whole seconds, extended as far as it is read."""

    rng: random.Random
    path: array[float] = field(default_factory=lambda: array("d", [0.0]))

    def at(self, second: int) -> float:
        while len(self.path) <= second:
            self.path.append(self.path[-1] + self.rng.gauss(0.0, 1.0))
        return self.path[second]


@dataclass(slots=True)
class Market:
    """Quotes per symbol: reference price, optional random walk, spread."""

    prices: Mapping[str, Decimal] = field(default_factory=dict)
    volatility_bps: Decimal = Decimal(0)
    spread_bps: Decimal = Decimal(2)
    _walks: dict[tuple[str, date], _Walk] = field(default_factory=dict)

    def reference(self, symbol: str, at: datetime) -> Decimal:
        base = self.prices.get(symbol) or name_price(symbol)
        if self.volatility_bps == 0:
            return base
        day = at.astimezone(UTC).date()
        second = int((at - datetime.combine(day, time(), UTC)).total_seconds())
        walk = self._walks.get((symbol, day))
        if walk is None:
            # One walk per symbol and trade date; yesterday's are no longer needed.
            self._walks = {k: w for k, w in self._walks.items() if k[1] >= day}
            seed = hashlib.sha256(f"{symbol}|{day.isoformat()}".encode()).digest()
            walk = self._walks[(symbol, day)] = _Walk(random.Random(seed))
        # Geometric: the price stays positive however far it wanders.
        move = math.exp(float(self.volatility_bps / BPS) * walk.at(second))
        return max(CENT, (base * Decimal(repr(move))).quantize(CENT))

    def quote(self, symbol: str, at: datetime) -> Quote:
        """bid = ref x (1 - spread/2), ask = ref x (1 + spread/2), to the cent, never crossed."""
        ref = self.reference(symbol, at)
        half = self.spread_bps / BPS / 2
        bid = max(CENT, (ref * (1 - half)).quantize(CENT, rounding=ROUND_FLOOR))
        ask = max(bid, (ref * (1 + half)).quantize(CENT, rounding=ROUND_CEILING))
        return Quote(bid=bid, ask=ask, last=ref)


@dataclass(frozen=True, slots=True)
class Step:
    """What one look at the market does to an order."""

    fill_qty: int = 0
    price: Decimal | None = None
    triggered: bool = False
    done: str | None = None  # "filled" or "canceled: <why>" when the order ends here


def execution_price(
    side: Side,
    order_type: OrderType,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    triggered: bool,
    quote: Quote,
) -> tuple[bool, Decimal | None]:
    """(triggered, the price it trades at now, or None when it rests)."""
    buying = side is Side.BUY
    touch = quote.ask if buying else quote.bid
    if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and not triggered:
        assert stop_price is not None
        triggered = touch >= stop_price if buying else touch <= stop_price
        if not triggered:
            return False, None
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        assert limit_price is not None
        marketable = touch <= limit_price if buying else touch >= limit_price
        return triggered, touch if marketable else None
    return triggered, touch


def step(
    *,
    side: Side,
    order_type: OrderType,
    time_in_force: TimeInForce,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    remaining: int,
    triggered: bool,
    first_look: bool,
    chunk: int,
    quote: Quote,
) -> Step:
    """One look at the market: how much fills now, and whether the order ends.

    `chunk` is the most shares per fill (0: everything at once). `ioc` fills what it can on
    its first look and cancels the rest; `fok` fills everything on its first look or nothing.
    """
    triggered, price = execution_price(side, order_type, limit_price, stop_price, triggered, quote)
    qty = 0 if price is None else (remaining if chunk == 0 else min(chunk, remaining))
    if time_in_force is TimeInForce.FOK and first_look and qty < remaining:
        return Step(triggered=triggered, done="canceled: fill or kill could not fill at once")
    left = remaining - qty
    if left == 0:
        return Step(qty, price, triggered, "filled")
    if time_in_force is TimeInForce.IOC and first_look:
        return Step(
            qty, price, triggered, "canceled: immediate or cancel, the rest could not fill at once"
        )
    return Step(qty, price, triggered)
