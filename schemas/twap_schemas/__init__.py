"""Pydantic models of the TWAP worker's wire contract: requests, control, events, replies.

Importable on its own (it needs only pydantic), so strategies can validate what they publish.
"""

from schemas.common import (
    SCHEMA_VERSION,
    Distribution,
    OrderType,
    Outcome,
    ParentStatus,
    Side,
    SliceStatus,
    TimeInForce,
)
from schemas.control import ControlCommand
from schemas.errors import ErrorDetail
from schemas.parse import InvalidMessage, decode_object, parse_control, parse_request
from schemas.replies import Reply
from schemas.requests import CancelRequest, Limits, RequestContext, SubmitRequest

__all__ = [
    "SCHEMA_VERSION",
    "CancelRequest",
    "ControlCommand",
    "Distribution",
    "ErrorDetail",
    "InvalidMessage",
    "Limits",
    "OrderType",
    "Outcome",
    "ParentStatus",
    "Reply",
    "RequestContext",
    "Side",
    "SliceStatus",
    "SubmitRequest",
    "TimeInForce",
    "decode_object",
    "parse_control",
    "parse_request",
]
