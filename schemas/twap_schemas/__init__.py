"""Pydantic models of the TWAP worker's wire contract: requests, control, events, replies.

Importable on its own (it needs only pydantic), so strategies can validate what they publish.
"""

from twap_schemas.common import (
    SCHEMA_VERSION,
    Distribution,
    ExecutionOutcome,
    OrderType,
    Outcome,
    ParentStatus,
    Side,
    SliceEnd,
    SliceStatus,
    TimeInForce,
)
from twap_schemas.control import ControlCommand
from twap_schemas.errors import ErrorDetail
from twap_schemas.parse import InvalidMessage, decode_object, parse_control, parse_request
from twap_schemas.replies import Reply
from twap_schemas.requests import CancelRequest, Limits, RequestContext, SubmitRequest

__all__ = [
    "SCHEMA_VERSION",
    "CancelRequest",
    "ControlCommand",
    "Distribution",
    "ErrorDetail",
    "ExecutionOutcome",
    "InvalidMessage",
    "Limits",
    "OrderType",
    "Outcome",
    "ParentStatus",
    "Reply",
    "RequestContext",
    "Side",
    "SliceEnd",
    "SliceStatus",
    "SubmitRequest",
    "TimeInForce",
    "decode_object",
    "parse_control",
    "parse_request",
]
