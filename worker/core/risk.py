"""Pre-trade risk limits: what they are, how a strategy's row and the default row combine, and
the checks at intake and before every slice. Pure: the caller reads the limits, the usage and
the reference price, and writes what these rules decide.

Rows combine per key: a strategy's own value, where it sets one, wins over the default row
`*`; a key the strategy row leaves unset takes the default's (see docs/decisions.md). An unset
key in both does not apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from twap_schemas.errors import ErrorDetail
from worker.core.records import ParentRecord

DEFAULT_ROW = "*"
BPS = Decimal(10_000)
WINDOW = timedelta(minutes=1)  # max_slices_per_minute counts over this sliding window

INT_KEYS = ("max_qty", "max_open_parents", "max_slices_per_minute", "price_collar_bps")
DECIMAL_KEYS = ("max_notional", "max_daily_notional")
SYMBOL_KEYS = ("restricted_symbols", "allowed_symbols")
LIMIT_KEYS = INT_KEYS + DECIMAL_KEYS + SYMBOL_KEYS


@dataclass(frozen=True, slots=True)
class Limits:
    """One row of limits; None: not set (does not apply, or falls back to the default row)."""

    max_qty: int | None = None
    max_notional: Decimal | None = None
    max_daily_notional: Decimal | None = None
    max_open_parents: int | None = None
    max_slices_per_minute: int | None = None
    price_collar_bps: int | None = None
    restricted_symbols: frozenset[str] | None = None
    allowed_symbols: frozenset[str] | None = None

    def over(self, default: Limits) -> Limits:
        """This row with every key it leaves unset taken from `default`."""
        return replace(default, **{k: v for k, v in self.values().items() if v is not None})

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def changed(self, changes: Mapping[str, Any]) -> Limits:
        """`limits.set` on this row: a key absent keeps its value, None removes it (symbols
        as a set, upper-cased as the requests store them)."""
        values: dict[str, Any] = {
            key: frozenset(s.upper() for s in value) if isinstance(value, list | tuple) else value
            for key, value in changes.items()}
        return replace(self, **values)

    def to_json(self) -> dict[str, Any]:
        """The set keys only, as the wire writes them (decimals as strings, symbols sorted)."""
        out: dict[str, Any] = {}
        for key, value in self.values().items():
            if value is None:
                continue
            if isinstance(value, frozenset):
                out[key] = sorted(value)
            elif isinstance(value, Decimal):
                out[key] = str(value)
            else:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        """A row as `to_json` wrote it; unknown keys are refused (a misspelt limit must not
        silently not apply)."""
        unknown = sorted(set(data) - set(LIMIT_KEYS))
        if unknown:
            raise ValueError(f"unknown limit {unknown[0]!r}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:
                continue
            if key in INT_KEYS:
                values[key] = int(value)
            elif key in DECIMAL_KEYS:
                values[key] = Decimal(str(value))
            else:
                values[key] = frozenset(str(s).upper() for s in value)
        return cls(**values)


def effective(default: Limits | None, own: Limits | None) -> Limits:
    """The limits that apply to a strategy, from its row and the default row (either may be
    missing)."""
    base = default if default is not None else Limits()
    return own.over(base) if own is not None else base


@dataclass(frozen=True, slots=True)
class Usage:
    """What a strategy already uses: its parents not yet ended, and the notional of the
    parents accepted for the trade date."""

    open_parents: int = 0
    daily_notional: Decimal = Decimal(0)

    def plus(self, notional: Decimal | None) -> Usage:
        """After one more accepted parent."""
        return Usage(self.open_parents + 1, self.daily_notional + (notional or Decimal(0)))


@dataclass(frozen=True, slots=True)
class NoPrice:
    """The reference price could not be had, and why."""

    reason: str


Reference = Decimal | NoPrice


def _n(value: int | Decimal) -> str:
    """A figure as a message shows it: thousands grouped, the decimals as given."""
    return f"{value:,}"


def needs_reference(limits: Limits, limit_price: Decimal | None,
                    stop_price: Decimal | None) -> bool:
    """Whether a check needs the reference price (else none is fetched)."""
    priced = limit_price is not None or stop_price is not None
    return (limits.max_notional is not None or limits.max_daily_notional is not None
            or (limits.price_collar_bps is not None and priced))


def symbol_errors(symbol: str, strategy: str, limits: Limits) -> list[ErrorDetail]:
    out = []
    if limits.restricted_symbols is not None and symbol in limits.restricted_symbols:
        out.append(ErrorDetail(
            loc="symbol", msg=f"{symbol} is in restricted_symbols for strategy {strategy}"))
    if limits.allowed_symbols is not None and symbol not in limits.allowed_symbols:
        out.append(ErrorDetail(
            loc="symbol", msg=f"{symbol} is not in allowed_symbols for strategy {strategy}"))
    return out


def collar_errors(symbol: str, strategy: str, limits: Limits, reference: Reference,
                  prices: Sequence[tuple[str, Decimal | None]]) -> list[ErrorDetail]:
    """Each given price within `price_collar_bps` of the reference; without a reference,
    refused (fail closed)."""
    collar = limits.price_collar_bps
    priced = [(name, price) for name, price in prices if price is not None]
    if collar is None or not priced:
        return []
    out = []
    for name, price in priced:
        assert price is not None
        if isinstance(reference, NoPrice):
            out.append(ErrorDetail(loc=name, msg=(
                f"no reference price for {symbol} ({reference.reason}): price_collar_bps "
                f"{_n(collar)} for strategy {strategy} cannot be checked (fail closed)")))
            continue
        # Exact: |price - reference| / reference > collar / 10,000, without a division.
        if abs(price - reference) * BPS > collar * reference:
            distance = (abs(price - reference) * BPS / reference).quantize(Decimal("0.1"))
            out.append(ErrorDetail(loc=name, msg=(
                f"{_n(price)} is {_n(distance)} bps from the reference price {_n(reference)} "
                f"of {symbol}; exceeds price_collar_bps {_n(collar)} for strategy {strategy}")))
    return out


def notional(qty: int, reference: Reference) -> Decimal | None:
    return None if isinstance(reference, NoPrice) else qty * reference


@dataclass(frozen=True, slots=True)
class SubmitVerdict:
    """Intake's answer: the errors (empty: within the limits) and the parent's notional at
    the reference price, when there was one (added to the day's usage once accepted)."""

    errors: list[ErrorDetail]
    notional: Decimal | None


def check_submit(parent: ParentRecord, limits: Limits, usage: Usage,
                 reference: Reference) -> SubmitVerdict:
    """Every limit a new parent breaks, each with the field at fault and the limit's value.
    A symbol the strategy may not trade is refused for that alone: the figures are moot."""
    strategy, symbol = parent.strategy_id, parent.symbol
    errors = symbol_errors(symbol, strategy, limits)
    if errors:
        return SubmitVerdict(errors, None)
    if limits.max_qty is not None and parent.qty > limits.max_qty:
        errors.append(ErrorDetail(loc="qty", msg=(
            f"{_n(parent.qty)} exceeds max_qty {_n(limits.max_qty)} for strategy {strategy}")))
    if limits.max_open_parents is not None and usage.open_parents >= limits.max_open_parents:
        errors.append(ErrorDetail(loc="strategy_id", msg=(
            f"{_n(usage.open_parents)} parents open; max_open_parents "
            f"{_n(limits.max_open_parents)} for strategy {strategy}")))
    value = notional(parent.qty, reference)
    for key, limit, before in (
        ("max_notional", limits.max_notional, Decimal(0)),
        ("max_daily_notional", limits.max_daily_notional, usage.daily_notional),
    ):
        if limit is None:
            continue
        if value is None:
            assert isinstance(reference, NoPrice)
            errors.append(ErrorDetail(loc="qty", msg=(
                f"no reference price for {symbol} ({reference.reason}): {key} {_n(limit)} "
                f"for strategy {strategy} cannot be checked (fail closed)")))
        elif before + value > limit:
            assert not isinstance(reference, NoPrice)
            day = f" on {parent.trade_date.isoformat()} with {_n(before)} already accepted" \
                if key == "max_daily_notional" else ""
            errors.append(ErrorDetail(loc="qty", msg=(
                f"notional {_n(value)} ({_n(parent.qty)} x {_n(reference)}){day} exceeds "
                f"{key} {_n(limit)} for strategy {strategy}")))
    errors += collar_errors(symbol, strategy, limits, reference,
                            [("limit_price", parent.limit_price),
                             ("stop_price", parent.stop_price)])
    return SubmitVerdict(errors, value)


@dataclass(frozen=True, slots=True)
class SliceOrder:
    """What the check before a slice reads of the slice and its parent."""

    strategy_id: str
    symbol: str
    qty: int
    limit_price: Decimal | None
    stop_price: Decimal | None


def check_slice(order: SliceOrder, limits: Limits, reference: Reference) -> str | None:
    """Why a slice must not go out (its blocked_risk reason), or None: symbols, the collar and
    the slice's own notional against max_notional, with the reference price of now."""
    errors = symbol_errors(order.symbol, order.strategy_id, limits)
    if limits.max_notional is not None:
        value = notional(order.qty, reference)
        if value is None:
            assert isinstance(reference, NoPrice)
            errors.append(ErrorDetail(loc="qty", msg=(
                f"no reference price for {order.symbol} ({reference.reason}): max_notional "
                f"{_n(limits.max_notional)} for strategy {order.strategy_id} cannot be "
                "checked (fail closed)")))
        elif value > limits.max_notional:
            assert not isinstance(reference, NoPrice)
            errors.append(ErrorDetail(loc="qty", msg=(
                f"slice notional {_n(value)} ({_n(order.qty)} x {_n(reference)}) exceeds "
                f"max_notional {_n(limits.max_notional)} for strategy {order.strategy_id}")))
    errors += collar_errors(order.symbol, order.strategy_id, limits, reference,
                            [("limit_price", order.limit_price),
                             ("stop_price", order.stop_price)])
    if not errors:
        return None
    return "; ".join(f"{e.loc}: {e.msg}" for e in errors)


@dataclass(frozen=True, slots=True)
class Turn:
    """When a slice may go under max_slices_per_minute (`at` >= now), or why it may not."""

    at: datetime | None
    reason: str | None = None


def rate_turn(recent: Sequence[datetime], now: datetime, per_minute: int | None,
              deadline: datetime, strategy: str) -> Turn:
    """The earliest time from `now` at which the strategy has sent fewer than `per_minute`
    slices in the minute before, given the times of its slices already let through
    (`recent`, any order, future turns included). A turn after `deadline` (the slice's
    grace) is no turn: the slice is blocked."""
    if per_minute is None:
        return Turn(now)
    times = sorted(t for t in recent if t > now - WINDOW)
    if per_minute <= 0:
        return Turn(None, f"max_slices_per_minute {_n(per_minute)} for strategy {strategy}")
    # In (t - 1 min, t] at most per_minute - 1 others: the per_minute-th latest must be out.
    at = now if len(times) < per_minute else max(now, times[-per_minute] + WINDOW)
    if at > deadline:
        return Turn(None, (
            f"max_slices_per_minute {_n(per_minute)} for strategy {strategy} reached; its next "
            f"turn ({at.isoformat()}) is past the grace ({deadline.isoformat()})"))
    return Turn(at)
