"""From raw AMQP body to a typed request, or to the list of everything wrong with it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.control import ControlCommand
from schemas.errors import ErrorDetail, errors_from_validation
from schemas.requests import MAX_MESSAGE_BYTES, CancelRequest, RequestContext, SubmitRequest

M = TypeVar("M", bound=BaseModel)

REQUEST_TYPES: dict[str, type[SubmitRequest] | type[CancelRequest]] = {
    "submit": SubmitRequest,
    "cancel": CancelRequest,
}


class InvalidMessage(Exception):
    """The message can never succeed; `errors` says every reason, `kind` the class of failure."""

    def __init__(self, kind: str, errors: list[ErrorDetail]) -> None:
        super().__init__(f"{kind}: " + "; ".join(f"{e.loc}: {e.msg}" for e in errors))
        self.kind = kind
        self.errors = errors


def decode_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object, numbers with a fraction as Decimal so prices stay exact."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(
            "too_large",
            [ErrorDetail(loc="$", msg=f"message is {len(body)} bytes; the limit is 65536")],
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(
            "not_json", [ErrorDetail(loc="$", msg=f"not UTF-8 text: {exc.reason}")]
        ) from None
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage("not_json", [ErrorDetail(loc="$", msg=f"not JSON: {exc}")]) from None
    if not isinstance(value, dict):
        raise InvalidMessage(
            "not_object",
            [ErrorDetail(loc="$", msg=f"must be a JSON object, got {type(value).__name__}")],
        )
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def parse_request(
    body: bytes, context: RequestContext | None = None
) -> SubmitRequest | CancelRequest:
    """Decode and validate a `N.requests` message; raises InvalidMessage with every error."""
    obj = decode_object(body)
    kind = obj.get("type")
    model = REQUEST_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidMessage(
            "unknown_type",
            [ErrorDetail(loc="type", msg=f"must be 'submit' or 'cancel', got {kind!r}")],
        )
    return _validate(model, obj, context)


def parse_control(body: bytes) -> ControlCommand:
    """Decode and validate a `N.control` message; raises InvalidMessage with every error."""
    return _validate(ControlCommand, decode_object(body), None)


def _validate(model: type[M], obj: dict[str, Any], context: object) -> M:
    try:
        return model.model_validate(obj, context=context)
    except ValidationError as exc:
        raise InvalidMessage("schema", errors_from_validation(exc)) from None
