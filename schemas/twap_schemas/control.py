"""Control messages published by operators to `N.control`: the kill switch and the breaker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twap_schemas.numbers import TEXT_PATTERN

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
