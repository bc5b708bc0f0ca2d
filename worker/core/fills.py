"""Fills from cumulative figures: what one broker update adds to a slice and to its parent.

Brokers report an order's *cumulative* filled qty and average price. Applying the increment
between two cumulative views makes every update idempotent: a repeated, stale or reordered
update does not raise the filled qty, so it adds nothing.

Exactness: a notional (qty x average) of decimals is exact, so the notional is what we add up;
an average is a quotient and may not terminate (100 / 3), so every derived price is rounded
half-even to PRICE_PLACES decimals, once, where it is derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

PRICE_PLACES = 10
_QUANTUM = Decimal(1).scaleb(-PRICE_PLACES)
# Enough digits that a product of a 20-digit price and a 2^31 qty never rounds.
_EXACT_DIGITS = 60


class FillError(ValueError):
    """A broker view that cannot be right (more filled than ordered, a negative price)."""


@dataclass(frozen=True, slots=True)
class Execution:
    """What an order has filled so far: cumulative qty and its notional (qty x avg price)."""

    filled_qty: int = 0
    notional: Decimal = Decimal(0)

    @property
    def avg_price(self) -> Decimal | None:
        return average(self.notional, self.filled_qty)


@dataclass(frozen=True, slots=True)
class Fill:
    """The increment one update brings: `qty` shares at `price` (derived, rounded)."""

    qty: int
    price: Decimal
    notional: Decimal
    after: Execution


def average(notional: Decimal, qty: int) -> Decimal | None:
    """notional / qty rounded half-even to PRICE_PLACES decimals; None when nothing filled."""
    if qty == 0:
        return None
    with localcontext() as ctx:
        ctx.prec = _EXACT_DIGITS
        return (notional / qty).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)


def notional_of(qty: int, avg_price: Decimal) -> Decimal:
    """qty x avg_price, exactly."""
    with localcontext() as ctx:
        ctx.prec = _EXACT_DIGITS
        return avg_price * qty


def increment(
    before: Execution, filled_qty: int, avg_price: Decimal | None, order_qty: int
) -> Fill | None:
    """The fill between `before` and a broker's cumulative view; None if it adds nothing.

    An update whose filled qty is not above what is already recorded changes nothing (stale,
    repeated or reordered). A view beyond the order's qty, or a fill without a price, is an
    error: the broker's figure cannot be trusted, so nothing is applied.
    """
    if filled_qty <= before.filled_qty:
        return None
    if filled_qty > order_qty:
        raise FillError(f"filled qty {filled_qty} exceeds the order qty {order_qty}")
    if avg_price is None or not avg_price.is_finite() or avg_price <= 0:
        raise FillError(
            f"a fill of {filled_qty} shares needs a positive average price, got {avg_price}"
        )
    total = notional_of(filled_qty, avg_price)
    with localcontext() as ctx:
        ctx.prec = _EXACT_DIGITS
        added = total - before.notional
    qty = filled_qty - before.filled_qty
    price = average(added, qty)
    if price is None or price <= 0:
        raise FillError(
            f"average {avg_price} over {filled_qty} shares implies a non-positive "
            f"price for the last {qty}"
        )
    return Fill(qty=qty, price=price, notional=added, after=Execution(filled_qty, total))


def combine(executions: list[Execution]) -> Execution:
    """The parent's execution: the sum of its slices' (filled qty and notional add up)."""
    qty = 0
    with localcontext() as ctx:
        ctx.prec = _EXACT_DIGITS
        notional = Decimal(0)
        for e in executions:
            qty += e.filled_qty
            notional += e.notional
    return Execution(qty, notional)
