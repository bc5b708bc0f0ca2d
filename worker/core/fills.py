"""Fills from cumulative figures: what one broker update adds to a slice and to its parent.

Brokers report an order's *cumulative* filled qty and average price. Applying the increment
between two cumulative views makes every update idempotent: a repeated, stale or reordered
update does not raise the filled qty, so it adds nothing.

Exactness: a notional (qty x average) of decimals is exact, so the notional is what we add up;
an average is a quotient and may not terminate (100 / 3), so every derived price is rounded
half-even to PRICE_PLACES decimals, once, where it is derived.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from twap_schemas.common import SliceStatus
from worker.core.records import SliceRecord

PRICE_PLACES = 10
NOT_FILLED_REASON = "ended at the broker before it filled completely"
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


@dataclass(frozen=True, slots=True)
class ViewStep:
    """What one broker view of a working order does to its slice: the fill it adds (if any)
    and, when the order ended, the slice's end. Written as one change of each row it touches
    (store/fills.py), so a view that fills and ends an order costs no more than one that
    only fills it."""

    fill: Fill | None
    filled: SliceRecord  # after the fill, still working: what `slice.fill` reports
    after: SliceRecord  # after the view: `filled` or `closed` once the order ended

    @property
    def ended(self) -> bool:
        return self.after.status is not self.filled.status

    @property
    def released(self) -> int:
        """Shares no longer working because the order ended without them."""
        return self.after.qty - self.after.filled_qty if self.ended else 0

    @property
    def unworked(self) -> int:
        """Shares that stop counting as working at the broker: filled now, or released."""
        return (self.fill.qty if self.fill is not None else 0) + self.released


def view_step(
    record: SliceRecord, *, filled_qty: int, avg_price: Decimal | None, ended: bool,
    broker_order_id: str, reason: str | None = None,
) -> ViewStep | None:
    """The step a broker's cumulative view of `record`'s order makes; None if it changes
    nothing (no new fill and the order still working). Raises FillError, before anything is
    written, on a view that cannot be right. `reason`: why the slice closes if the view ends
    it unfilled (else NOT_FILLED_REASON)."""
    fill = increment(Execution(record.filled_qty, record.fill_notional), filled_qty,
                     avg_price, record.qty)
    if fill is None and not ended:
        return None
    filled = record
    if fill is not None:
        filled = replace(record, filled_qty=fill.after.filled_qty,
                         fill_notional=fill.after.notional,
                         broker_order_id=record.broker_order_id or broker_order_id)
    after = filled
    if ended:
        if filled.filled_qty == filled.qty:
            after = replace(filled, status=SliceStatus.FILLED, reason=None)
        else:
            after = replace(filled, status=SliceStatus.CLOSED,
                            reason=reason or NOT_FILLED_REASON)
    return ViewStep(fill, filled, after)
