"""From raw AMQP body to a typed request, or to the list of everything wrong with it."""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from twap_schemas.control import AnyControl, ControlCommand, GrantsSet, LimitsSet
from twap_schemas.errors import ErrorDetail, errors_from_validation
from twap_schemas.numbers import Unrepresentable
from twap_schemas.requests import (
    CONTEXT_ERROR,
    MAX_MESSAGE_BYTES,
    CancelRequest,
    RequestContext,
    SubmitRequest,
)

log = logging.getLogger(__name__)

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
        value = json.loads(text, parse_float=_decimal, parse_int=_integer,
                           parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage("not_json", [ErrorDetail(loc="$", msg=f"not JSON: {exc}")]) from None
    if "\\u" in text and _has_lone_surrogate(value):
        raise InvalidMessage("not_json", [ErrorDetail(
            loc="$", msg="not UTF-8 text: a \\u escape names an unpaired surrogate")])
    if not isinstance(value, dict):
        raise InvalidMessage(
            "not_object",
            [ErrorDetail(loc="$", msg=f"must be a JSON object, got {type(value).__name__}")],
        )
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """An escaped half of a UTF-16 pair (`"\\ud800"`): JSON's grammar lets it through, but it is
    no Unicode text (RFC 7493 forbids it) and no UTF-8 column can hold it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _decimal(text: str) -> Decimal | Unrepresentable:
    # Valid JSON, but an exponent beyond what Decimal holds: the field that carries it is
    # refused by name (an exception here would fail the whole message, and used to fail its
    # batch).
    try:
        return Decimal(text)
    except InvalidOperation:
        return Unrepresentable(text)


def _integer(text: str) -> int | Unrepresentable:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return Unrepresentable(text)


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


def parse_control(body: bytes) -> AnyControl:
    """Decode and validate a `N.control` message; raises InvalidMessage with every error.
    `limits.set` and `grants.set` have their own shapes; every other type is a switch command
    (which refuses an unknown type by name)."""
    obj = decode_object(body)
    kind = obj.get("type")
    if kind == "limits.set":
        return _validate(LimitsSet, obj, None)
    if kind == "grants.set":
        return _validate(GrantsSet, obj, None)
    return _validate(ControlCommand, obj, None)


def parse_switch(body: bytes) -> ControlCommand:
    """A kill switch or breaker command only (what `twap kill-switch` and `breaker` send)."""
    return _validate(ControlCommand, decode_object(body), None)


def _validate(model: type[M], obj: dict[str, Any], context: object) -> M:
    try:
        return model.model_validate(obj, context=context)
    except ValidationError as exc:
        # Only the worker's own rules (its clock, its configured maximums) broken: the request
        # is well-formed by the published schema, so the reason is `plan`, not `schema`.
        worker_rules = all(e["type"] == CONTEXT_ERROR for e in exc.errors())
        kind = "plan" if worker_rules else "schema"
        raise InvalidMessage(kind, errors_from_validation(exc)) from None
    except Exception as exc:
        # Whatever a value makes validation raise, it is this message's problem alone: refused
        # with its own error, never a crash that fails the batch it came in.
        log.warning("request.validation_raised", extra={"error": repr(exc)[:200]})
        raise InvalidMessage(
            "schema", [ErrorDetail(loc="$", msg=f"could not be validated: {exc!r}"[:300])]
        ) from None
