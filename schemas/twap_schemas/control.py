"""Control messages published by operators to `N.control`: the kill switch and the breaker."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from twap_schemas.numbers import MAX_INTEGER, TEXT_PATTERN
from twap_schemas.requests import Price, _integer

ControlType = Literal["kill_switch.engage", "kill_switch.release", "breaker.trip", "breaker.reset"]
NEEDS_REASON = frozenset({"kill_switch.engage", "breaker.trip"})


class ControlCommand(BaseModel):
    """Engage or release the kill switch, trip or reset the circuit breaker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ControlType
    reason: str | None = Field(default=None, min_length=1, max_length=256, pattern=TEXT_PATTERN)
    operator: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)

    @model_validator(mode="after")
    def _reason_required(self) -> ControlCommand:
        if self.type in NEEDS_REASON and not self.reason:
            raise ValueError(f"reason is required for {self.type}")
        return self


# -- risk limits and access (contract v2): operator only when authorization is on ------------
StrategyOrDefault = Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9_-]{1,64})$")]
Symbol = Annotated[str, Field(pattern=r"^[A-Za-z0-9./]{1,16}$")]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_INTEGER), BeforeValidator(_integer)]
Symbols = Annotated[list[Symbol], Field(max_length=10_000)]
Action = Literal["submit", "cancel", "pause", "resume", "amend"]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)]


class LimitValues(BaseModel):
    """The limits a `limits.set` changes: a key absent keeps its value, null removes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_qty: Count | None = Field(default=None, description="shares per parent")
    max_notional: Price | None = Field(
        default=None, description="per parent: qty x the reference price")
    max_daily_notional: Price | None = Field(
        default=None, description="per strategy and trade date, over its accepted parents")
    max_open_parents: Count | None = None
    max_slices_per_minute: Count | None = Field(
        default=None, description="per strategy, across its parents")
    price_collar_bps: Count | None = Field(
        default=None, description="limit and stop prices within this distance of the reference")
    restricted_symbols: Symbols | None = None
    allowed_symbols: Symbols | None = None


class LimitsSet(BaseModel):
    """Set some limits of one strategy (`*`: the default row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["limits.set"]
    strategy_id: StrategyOrDefault
    limits: LimitValues
    operator: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)
    reason: str | None = Field(default=None, min_length=1, max_length=256, pattern=TEXT_PATTERN)

    def changes(self) -> dict[str, object]:
        """The keys the message names (null included), as given."""
        return {key: getattr(self.limits, key) for key in self.limits.model_fields_set}


class GrantsSet(BaseModel):
    """Replace one user's grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["grants.set"]
    user: Name
    strategies: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]],
                          Field(max_length=10_000)]
    actions: Annotated[list[Action], Field(max_length=5)]
    operator: bool = False
    by: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)
    reason: str | None = Field(default=None, min_length=1, max_length=256, pattern=TEXT_PATTERN)


AnyControl = ControlCommand | LimitsSet | GrantsSet
