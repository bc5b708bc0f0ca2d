"""Turning one inbound message into a decision the store can apply: pure, no I/O."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from twap_schemas.errors import ErrorDetail
from twap_schemas.parse import InvalidMessage, parse_request
from twap_schemas.requests import CancelRequest, RequestContext
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.core.slicing import PlanError

log = logging.getLogger(__name__)

# AMQP properties the store keeps, and the columns they go to: a longer one is refused here
# with its own error, and cut to fit the rejection that reports it.
PROPERTY_LIMITS = {"message_id": 64, "user_id": 128}
_STRATEGY = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Inbound:
    """A request as delivered, independent of the transport."""

    body: bytes
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    user_id: str | None = None
    timestamp: datetime | None = None  # the AMQP `timestamp` property: when it was published


@dataclass(frozen=True, slots=True)
class PlannedSubmit:
    inbound: Inbound
    parent: ParentRecord
    slices: list[SliceRecord]
    # The worker's time its trade date was taken from, when nothing in the message fixed it
    # (no trade_date, start_at or timestamp): kept by message id, so a redelivery gets it too.
    dated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    inbound: Inbound
    request: CancelRequest


@dataclass(frozen=True, slots=True)
class Invalid:
    inbound: Inbound
    kind: str  # not_json | not_object | unknown_type | schema | too_large | plan
    errors: list[ErrorDetail]
    strategy_id: str | None = None


IntakeItem = PlannedSubmit | CancelOrder | Invalid


def classify(inbound: Inbound, context: RequestContext, now: datetime, *,
             first_seen: datetime | None = None) -> IntakeItem:
    """Validate and plan one request; every failure becomes an Invalid with all its errors.

    Never raises: whatever one message does to the parser or the planner is that message's
    rejection, never a failure of the batch it arrived in. A submit's default trade date is
    the date it was received: its AMQP timestamp when it has one, else `first_seen` (when the
    worker first saw it), else `now`.
    """
    try:
        return _classify(inbound, context, now, first_seen)
    except Exception as exc:
        log.exception("intake.classify_raised", extra={"message_id": inbound.message_id})
        return Invalid(_storable(inbound), "plan",
                       [ErrorDetail(loc="$", msg=f"could not be planned: {exc!r}"[:300])],
                       _strategy_hint(inbound.body))


def _classify(inbound: Inbound, context: RequestContext, now: datetime,
              first_seen: datetime | None) -> IntakeItem:
    too_long = _property_errors(inbound)
    try:
        request = parse_request(inbound.body, context)
    except InvalidMessage as exc:
        kind = "schema" if too_long else exc.kind
        return Invalid(_storable(inbound), kind, too_long + exc.errors,
                       _strategy_hint(inbound.body))
    strategy = getattr(request, "strategy_id", None)
    if too_long:
        return Invalid(_storable(inbound), "schema", too_long, strategy)
    if isinstance(request, CancelRequest):
        return CancelOrder(inbound, request)
    try:
        received = inbound.timestamp or first_seen or now
        parent, slices = build_plan(
            request, now=now, received_at=received, max_slices=context.limits.max_slices,
            submitted_by=inbound.user_id,
        )
    except PlanError as exc:
        errors = [ErrorDetail(loc=exc.loc, msg=exc.msg)]
        return Invalid(inbound, "plan", errors, request.strategy_id)
    clock_dated = (request.trade_date is None and request.start_at is None
                   and inbound.timestamp is None)
    return PlannedSubmit(inbound, parent, slices, received if clock_dated else None)


def _property_errors(inbound: Inbound) -> list[ErrorDetail]:
    out = []
    for name, limit in PROPERTY_LIMITS.items():
        value = getattr(inbound, name)
        if value is not None and len(value) > limit:
            out.append(ErrorDetail(
                loc=f"properties.{name}",
                msg=f"AMQP {name} is {len(value)} characters; at most {limit}",
            ))
    return out


def _storable(inbound: Inbound) -> Inbound:
    """The inbound with its properties cut to what the store keeps (for its rejection)."""
    cut = {name: getattr(inbound, name)[:limit] for name, limit in PROPERTY_LIMITS.items()
           if getattr(inbound, name) is not None and len(getattr(inbound, name)) > limit}
    return dataclasses.replace(inbound, **cut) if cut else inbound


def _strategy_hint(body: bytes) -> str | None:
    """The strategy of an invalid request, for its event's routing key, when it can be read."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError, ArithmeticError):
        return None
    strategy = value.get("strategy_id") if isinstance(value, dict) else None
    if isinstance(strategy, str) and _STRATEGY.fullmatch(strategy):
        return strategy
    return None
