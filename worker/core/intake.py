"""Turning one inbound message into a decision the store can apply: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.errors import ErrorDetail
from schemas.parse import InvalidMessage, parse_request
from schemas.requests import CancelRequest, RequestContext
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.core.slicing import PlanError


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

    A submit's default trade date is the date it was received: its AMQP timestamp when it has
    one, else `first_seen` (when the worker first saw it), else `now`.
    """
    try:
        request = parse_request(inbound.body, context)
    except InvalidMessage as exc:
        return Invalid(inbound, exc.kind, exc.errors, _strategy_hint(inbound.body))
    if isinstance(request, CancelRequest):
        return CancelOrder(inbound, request)
    try:
        received = inbound.timestamp or first_seen or now
        parent, slices = build_plan(
            request, now=now, received_at=received, max_slices=context.limits.max_slices,
            submitted_by=inbound.user_id,
        )
    except PlanError as exc:
        return Invalid(inbound, "plan", [ErrorDetail(loc=exc.loc, msg=exc.msg)], request.strategy_id)
    clock_dated = (request.trade_date is None and request.start_at is None
                   and inbound.timestamp is None)
    return PlannedSubmit(inbound, parent, slices, received if clock_dated else None)


def _strategy_hint(body: bytes) -> str | None:
    """The strategy of an invalid request, for its event's routing key, when it can be read."""
    import json
    import re

    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    strategy = value.get("strategy_id") if isinstance(value, dict) else None
    if isinstance(strategy, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", strategy):
        return strategy
    return None
