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
    StrictInt,
    ValidationInfo,
    field_validator,
)

from schemas.common import Distribution, OrderType, Side, TimeInForce

MAX_MESSAGE_BYTES = 64 * 1024
MAX_START_AHEAD = timedelta(days=7)
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2024-05-01T14:30:00Z")
    parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    return parsed


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return date.fromisoformat(value)


def _decimal(value: Any) -> Any:
    # JSON numbers arrive as Decimal (the worker parses with parse_float=Decimal) or int; strings
    # are accepted too. Floats from Python callers go through str() so 0.1 stays 0.1.
    if isinstance(value, bool):
        raise ValueError("must be a decimal number or a string holding one")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


Price = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    Field(gt=0, max_digits=20, decimal_places=8, allow_inf_nan=False),
]
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]
TradeDate = Annotated[date, BeforeValidator(_iso_date)]


class SubmitRequest(BaseModel):
    """A TWAP parent order: `qty` shares of `symbol` spread evenly over the duration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["submit"]
    strategy_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    symbol: str = Field(pattern=r"^[A-Za-z0-9./]{1,16}$")
    side: Side
    qty: StrictInt = Field(ge=1)
    duration_minutes: StrictInt | None = Field(default=None, ge=1, le=1_440)
    duration_seconds: StrictInt | None = Field(default=None, ge=1, le=86_400, validate_default=True)
    interval_seconds: StrictInt = Field(default=60, ge=1)
    order_type: OrderType = OrderType.MARKET
    limit_price: Price | None = Field(default=None, validate_default=True)
    stop_price: Price | None = Field(default=None, validate_default=True)
    time_in_force: TimeInForce = TimeInForce.DAY
    max_slice_qty: StrictInt | None = Field(default=None, ge=1)
    distribution: Distribution = Distribution.FRONT_LOADED
    start_at: Timestamp | None = None
    trade_date: TradeDate | None = None
    request_id: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("symbol")
    @classmethod
    def _upper_symbol(cls, value: str) -> str:
        return value.upper()

    @field_validator("qty")
    @classmethod
    def _qty_limit(cls, value: int, info: ValidationInfo) -> int:
        ctx = _context(info)
        if ctx is not None and value > ctx.limits.max_qty:
            raise ValueError(f"must be at most {ctx.limits.max_qty} (configured maximum)")
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
            raise ValueError(
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
        value = value.astimezone(UTC)
        ctx = _context(info)
        if ctx is not None and ctx.now is not None:
            if value < ctx.now - ctx.misfire_grace:
                raise ValueError(
                    "is in the past by more than the misfire grace "
                    f"({int(ctx.misfire_grace.total_seconds())} s)"
                )
            if value > ctx.now + MAX_START_AHEAD:
                raise ValueError("is more than 7 days ahead")
        return value

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
    parent_order_id: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=256)
    cancel_working_orders: StrictBool = False
