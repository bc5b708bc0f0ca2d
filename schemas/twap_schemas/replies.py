"""The reply sent to a request's `reply_to` queue, with the request's `correlation_id`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from twap_schemas.common import Outcome
from twap_schemas.errors import ErrorDetail
from twap_schemas.events import PlannedSlice


class Reply(BaseModel):
    """Outcome of one request: the plan when accepted, the errors when rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome
    type: str | None = None
    parent_order_id: str | None = None
    total_qty: int | None = None
    total_slices: int | None = None
    interval_seconds: int | None = None
    slices: list[PlannedSlice] | None = None
    canceled_slices: int | None = None
    in_flight_slices: int | None = None
    errors: list[ErrorDetail] | None = None
