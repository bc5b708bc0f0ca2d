"""Request messages published by strategies to `N.requests`: `submit` and `cancel`.

Every rule of the contract lives here so that a strategy can validate a message before it
publishes it, with exactly the errors the worker would answer. Rules that depend on the worker's
configuration (upper limits, the clock, the misfire grace) read them from the validation context
(see `RequestContext`); without a context only the contract's fixed ranges apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from twap_schemas.common import Distribution, OrderType, Side, SliceEnd, TimeInForce
from twap_schemas.numbers import (
    MAX_DURATION_SECONDS,
    MAX_INTEGER,
    PRICE_PATTERN,
    PRICE_ZERO_PATTERN,
    RATIO_DECIMALS,
    RATIO_PATTERN,
    TEXT_PATTERN,
    Unrepresentable,
)

MAX_MESSAGE_BYTES = 64 * 1024
MAX_START_AHEAD = timedelta(days=7)
# The published JSON Schema carries these very patterns (json_schema.py): `[0-9]`, not
# `\d` (which matches every Unicode digit in Python), and fullmatch, so a trailing newline never
# passes.
RFC3339_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_RFC3339 = re.compile(RFC3339_PATTERN)
_DATE = re.compile(DATE_PATTERN)
_PRICE = re.compile(PRICE_PATTERN)
_PRICE_ZERO = re.compile(PRICE_ZERO_PATTERN)
# Error type of the rules that depend on the worker (its clock, its configured maximums): no
# JSON Schema can state them, so a request broken only by them is refused with reason `plan`,
# not `schema` (twap_schemas.parse).
CONTEXT_ERROR = "worker_rule"


def context_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(CONTEXT_ERROR, message)


@dataclass(frozen=True)
class Limits:
    """Upper limits an operator configures on top of the contract's fixed ranges."""

    max_qty: int = 10_000_000
    max_slices: int = 10_000
    max_duration_seconds: int = 86_400


@dataclass(frozen=True)
class RequestContext:
    """What validation needs to know about the worker: its limits, clock and misfire grace."""

    limits: Limits = field(default_factory=Limits)
    now: datetime | None = None
    misfire_grace: timedelta = timedelta(seconds=60)


def _context(info: ValidationInfo) -> RequestContext | None:
    ctx = info.context
    if isinstance(ctx, RequestContext):
        return ctx
    if isinstance(ctx, dict):
        nested = ctx.get("request")
        if isinstance(nested, RequestContext):
            return nested
    return None


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2024-05-01T14:30:00Z")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError(f"is not a real date and time: {value}") from None


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"is not a real date: {value}") from None


def _decimal(value: Any) -> Any:
    # JSON numbers arrive as Decimal (the worker parses with parse_float=Decimal) or int. A
    # string must have the published pattern's plain form (no exponent, sign or blanks), so a
    # strategy that checks with the JSON Schema gets the same answer. Floats from Python callers
    # go through repr() so 0.1 stays 0.1.
    if isinstance(value, bool):
        raise ValueError("must be a decimal number or a string holding one")
    if isinstance(value, Unrepresentable):
        raise ValueError("number out of range")
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        if not _PRICE.fullmatch(value):
            raise ValueError(
                "must be a decimal number or a string holding one, with at most 12 digits "
                "before the point and 8 after, e.g. \"150.25\""
            )
        if _PRICE_ZERO.fullmatch(value):
            raise ValueError("must be greater than 0")
    return value


def _integer(value: Any) -> Any:
    # JSON has one number type: 100, 100.0 and 1e2 are the same integer (JSON Schema says so
    # too, see docs/decisions.md). Fractions and strings stay as they are for the strict int
    # check to refuse. An integral value beyond the bound is clamped just past it, so the
    # field's own range check names it without ever building a huge int.
    if isinstance(value, Unrepresentable):
        raise ValueError("number out of range")
    if isinstance(value, bool) or not isinstance(value, Decimal | float):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= MAX_INTEGER else value
    if not value.is_finite() or value != value.to_integral_value():
        return value
    return int(max(min(value, Decimal(MAX_INTEGER + 1)), Decimal(-MAX_INTEGER - 1)))


Price = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    Field(gt=0, max_digits=20, decimal_places=8, allow_inf_nan=False),
]

# Integer fields. Each range sits on the int itself, before the conversion of 100.0, so the
# JSON Schema shows it as minimum / maximum; every one fits a 64-bit column and a JavaScript
# number exactly (MAX_INTEGER).
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_INTEGER), BeforeValidator(_integer)]
Minutes = Annotated[int, Field(strict=True, ge=1, le=1_440), BeforeValidator(_integer)]
Seconds = Annotated[
    int, Field(strict=True, ge=1, le=MAX_DURATION_SECONDS), BeforeValidator(_integer)
]
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]
# max_catch_up_ratio: a decimal from 1 to 10 (the contract's bounds), written as a price is.
MIN_CATCH_UP_RATIO = Decimal(1)
MAX_CATCH_UP_RATIO = Decimal(10)
DEFAULT_CATCH_UP_RATIO = Decimal(2)
_RATIO = re.compile(RATIO_PATTERN)


def _ratio(value: Any) -> Any:
    if isinstance(value, str) and not _RATIO.fullmatch(value):
        raise ValueError(
            "must be a decimal from 1 to 10 with at most 8 decimals, as a number or a "
            "string such as \"2.5\""
        )
    return _decimal(value)


Ratio = Annotated[
    Decimal,
    BeforeValidator(_ratio),
    Field(ge=1, le=10, decimal_places=RATIO_DECIMALS, allow_inf_nan=False),
]
TradeDate = Annotated[date, BeforeValidator(_iso_date)]


class SubmitRequest(BaseModel):
    """A TWAP parent order: `qty` shares of `symbol` spread evenly over the duration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["submit"]
    strategy_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    symbol: str = Field(pattern=r"^[A-Za-z0-9./]{1,16}$")
    side: Side
    qty: Quantity
    duration_minutes: Minutes | None = None
    duration_seconds: Seconds | None = Field(default=None, validate_default=True)
    # Never longer than the longest duration: a larger one would only mean "one slice", and
    # the scheduler adds it to times.
    interval_seconds: Seconds = 60
    order_type: OrderType = OrderType.MARKET
    limit_price: Price | None = Field(default=None, validate_default=True)
    stop_price: Price | None = Field(default=None, validate_default=True)
    time_in_force: TimeInForce = TimeInForce.DAY
    max_slice_qty: Quantity | None = None
    distribution: Distribution = Distribution.FRONT_LOADED
    start_at: Timestamp | None = None
    trade_date: TradeDate | None = None
    request_id: str | None = Field(default=None, min_length=1, max_length=64,
                                   pattern=TEXT_PATTERN)
    # Execution (contract v2, "Fills and the order lifecycle"). Each is part of the parent id
    # only when it differs from its default, so every id planned before they existed stays.
    slice_end: SliceEnd = SliceEnd.CANCEL
    catch_up: StrictBool = True
    max_catch_up_ratio: Ratio = DEFAULT_CATCH_UP_RATIO
    keep_working_after_end: StrictBool = False

    @field_validator("symbol")
    @classmethod
    def _upper_symbol(cls, value: str) -> str:
        return value.upper()

    @field_validator("qty")
    @classmethod
    def _qty_limit(cls, value: int, info: ValidationInfo) -> int:
        ctx = _context(info)
        if ctx is not None and value > ctx.limits.max_qty:
            raise context_error(f"must be at most {ctx.limits.max_qty} (configured maximum)")
        return value

    @field_validator("duration_seconds", mode="after")
    @classmethod
    def _exactly_one_duration(cls, value: int | None, info: ValidationInfo) -> int | None:
        minutes = info.data.get("duration_minutes")
        if "duration_minutes" not in info.data:
            return value  # duration_minutes itself was invalid and is reported on its own
        if value is None and minutes is None:
            raise ValueError("give duration_seconds or duration_minutes")
        if value is not None and minutes is not None:
            raise ValueError("give duration_seconds or duration_minutes, not both")
        total = value if value is not None else int(minutes or 0) * 60
        ctx = _context(info)
        if ctx is not None and total > ctx.limits.max_duration_seconds:
            raise context_error(
                f"duration {total} s exceeds the configured maximum of "
                f"{ctx.limits.max_duration_seconds} s"
            )
        return value

    @field_validator("limit_price", mode="after")
    @classmethod
    def _limit_price_rule(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        return _price_rule("limit_price", value, info, {OrderType.LIMIT, OrderType.STOP_LIMIT})

    @field_validator("stop_price", mode="after")
    @classmethod
    def _stop_price_rule(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        return _price_rule("stop_price", value, info, {OrderType.STOP, OrderType.STOP_LIMIT})

    @field_validator("start_at", mode="after")
    @classmethod
    def _start_window(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        try:
            utc = value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first UTC instant
            raise context_error("is outside the range of dates a start can have") from None
        ctx = _context(info)
        if ctx is not None and ctx.now is not None:
            if utc < ctx.now - ctx.misfire_grace:
                raise context_error(
                    "is in the past by more than the misfire grace "
                    f"({int(ctx.misfire_grace.total_seconds())} s)"
                )
            if utc > ctx.now + MAX_START_AHEAD:
                raise context_error("is more than 7 days ahead")
        return utc

    @property
    def duration(self) -> int:
        """Duration in seconds, whichever field carried it."""
        if self.duration_seconds is not None:
            return self.duration_seconds
        assert self.duration_minutes is not None
        return self.duration_minutes * 60


def _price_rule(
    name: str, value: Decimal | None, info: ValidationInfo, needs: set[OrderType]
) -> Decimal | None:
    order_type = info.data.get("order_type")
    if order_type is None:
        return value  # order_type was invalid; reported on its own
    if order_type in needs and value is None:
        raise ValueError(f"required when order_type is {order_type.value}")
    if order_type not in needs and value is not None:
        raise ValueError(f"not allowed when order_type is {order_type.value}")
    return value


class CancelRequest(BaseModel):
    """Stop every slice of a parent that has not gone out yet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["cancel"]
    # Every parent id is 24 characters; a longer one can never name a parent (nor be stored).
    parent_order_id: str = Field(min_length=1, max_length=24, pattern=TEXT_PATTERN)
    reason: str | None = Field(default=None, max_length=256, pattern=TEXT_PATTERN)
    cancel_working_orders: StrictBool = False
