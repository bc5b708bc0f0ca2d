"""JSON Schema (draft-07) of every message of the wire contract, built from the pydantic models.

Requests and control commands are described as the worker *accepts* them (validation mode);
events and replies as the worker *writes* them (serialization mode: prices are strings). The
few cross-field rules pydantic checks in code (exactly one duration, prices that depend on the
order type, a reason for engage and trip) are added by hand so that a strategy written in any
language can validate its messages before publishing them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel

from twap_schemas.control import NEEDS_REASON, ControlCommand, ControlType, GrantsSet, LimitsSet
from twap_schemas.events import SLICE_EVENTS, AnyEvent
from twap_schemas.numbers import (
    PRICE_DECIMALS,
    PRICE_PATTERN,
    PRICE_WHOLE_DIGITS,
    PRICE_ZERO_PATTERN,
    RATIO_DECIMALS,
    RATIO_PATTERN,
    TEXT_PATTERN,
)
from twap_schemas.replies import Reply
from twap_schemas.requests import (
    DATE_PATTERN,
    DEFAULT_CATCH_UP_RATIO,
    MAX_CATCH_UP_RATIO,
    MIN_CATCH_UP_RATIO,
    RFC3339_PATTERN,
    CancelRequest,
    SubmitRequest,
)

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
Kind = Literal["request", "control", "event", "reply"]
Schema = dict[str, Any]

EVENT_WHEN = {
    "parent.accepted": "The plan was persisted and scheduled.",
    "parent.canceled": "A cancel was processed.",
    "parent.completed": "Every slice of the parent reached a terminal status.",
    "slice.submitted": "The broker accepted the slice's order.",
    "slice.blocked_kill_switch": "The kill switch stopped the slice.",
    "slice.blocked_circuit_breaker": "The circuit breaker stopped the slice.",
    "slice.blocked_risk": "A pre-trade risk limit refused the slice before it was sent.",
    "slice.canceled": "The slice was canceled before it was claimed.",
    "slice.rejected": "The broker refused the order (never retried).",
    "slice.failed": "Retries were exhausted, or the infrastructure failed.",
    "slice.expired": "The slice missed its due time by more than the misfire grace.",
    "slice.fill": "A broker update raised the slice's filled qty (one fill, from cumulative "
    "figures).",
    "slice.filled": "The broker filled the whole slice qty.",
    "slice.closed": "The slice's order ended at the broker before it filled completely.",
    "request.rejected": "A request was invalid, or named an unknown parent.",
    "request.duplicate": "A submit named a parent that already exists; nothing was created.",
    "control.kill_switch.engaged": "The kill switch was engaged.",
    "control.kill_switch.released": "The kill switch was released.",
    "control.breaker.tripped": "The circuit breaker tripped (by command or by itself).",
    "control.breaker.reset": "The circuit breaker was reset.",
    "control.limits.changed": "An operator changed the risk limits of a strategy (or `*`).",
    "control.grants.changed": "An operator replaced a user's grants.",
}
CONTROL_WHAT = {
    "kill_switch.engage": "Engage the kill switch: every slice whose guard runs next is blocked.",
    "kill_switch.release": "Release the kill switch.",
    "breaker.trip": "Trip the circuit breaker: slices are blocked until it is reset.",
    "breaker.reset": "Reset the circuit breaker (and its failure count).",
    "limits.set": "Set risk limits of a strategy (`*`: the default row); a key absent keeps "
    "its value, null removes it. Operator only when authorization is on.",
    "grants.set": "Replace a user's grants (strategies and actions, or the operator role). "
    "Operator only when authorization is on.",
}
# The worker reads a JSON number as an exact decimal: `multipleOf` holds only for validators
# that compare exactly too (Python: numbers and schema loaded as Decimal; ajv:
# `multipleOfPrecision: 8`). A string is the plain form only, so every validator agrees.
DECIMAL = {
    "description": f"A decimal greater than 0 with at most {PRICE_WHOLE_DIGITS} digits before "
    f"the point and {PRICE_DECIMALS} after, as a JSON number or a string (strings keep the exact "
    "value; no exponent, sign or blanks).",
    "anyOf": [
        {
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 10**PRICE_WHOLE_DIGITS,
            "multipleOf": 10.0**-PRICE_DECIMALS,
        },
        {"type": "string", "pattern": PRICE_PATTERN, "not": {"pattern": PRICE_ZERO_PATTERN}},
    ],
}
# The worker checks these with the same patterns; `format` alone is optional in JSON Schema
# (and lets `+0200` or a leap second through some validators).
TEXT_PATTERNS = {"date-time": RFC3339_PATTERN, "date": DATE_PATTERN}


@dataclass(frozen=True, slots=True)
class MessageSchema:
    name: str  # the contract's name: "submit", "kill_switch.engage", "slice.submitted", "reply"
    kind: Kind
    schema: Schema

    @property
    def file_name(self) -> str:
        return f"{self.kind}.{self.name}.json" if self.kind != "reply" else "reply.json"


def message_schemas() -> list[MessageSchema]:
    """Every message of the contract, in a stable order."""
    out = [
        MessageSchema("submit", "request", _submit()),
        MessageSchema("cancel", "request", _model(CancelRequest, "validation")),
    ]
    out += [MessageSchema(t, "control", _control(t)) for t in get_args(ControlType)]
    out += [MessageSchema(t, "control", _access_control(model, t))
            for t, model in (("limits.set", LimitsSet), ("grants.set", GrantsSet))]
    out += [MessageSchema(t, "event", _event(model, t)) for t, model in event_models().items()]
    out.append(MessageSchema("reply", "reply", _model(Reply, "serialization")))
    return out


def event_models() -> dict[str, type[BaseModel]]:
    """event_type → model, in the order of the AnyEvent union."""
    union = get_args(AnyEvent)[0]
    return {model.model_fields["event_type"].default: model for model in get_args(union)}


def _model(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Schema:
    raw = model.model_json_schema(mode=mode, ref_template="#/definitions/{model}")
    schema: Schema = {"$schema": DRAFT_07}
    schema.update(_clean(raw, mode == "validation"))
    if "$defs" in schema:  # draft-07 spells it `definitions`
        schema["definitions"] = schema.pop("$defs")
    return schema


def _clean(node: Any, inbound: bool) -> Any:
    """Replace what pydantic could not express in JSON Schema (decimal constraints); on what
    the worker reads (`inbound`), add the patterns it checks timestamps and dates with."""
    if isinstance(node, dict):
        if "decimal_places" in node or "max_digits" in node:
            return copy.deepcopy(DECIMAL)
        out = {key: _clean(value, inbound) for key, value in node.items()}
        if inbound and node.get("type") == "string" and node.get("format") in TEXT_PATTERNS:
            out["pattern"] = TEXT_PATTERNS[node["format"]]
        return out
    if isinstance(node, list):
        return [_clean(item, inbound) for item in node]
    return node


def _submit() -> Schema:
    schema = _model(SubmitRequest, "validation")
    # A decimal within the contract's bounds, written as a price is (number or plain string).
    schema["properties"]["max_catch_up_ratio"] = {
        "title": "Max Catch Up Ratio",
        "description": f"A decimal from {MIN_CATCH_UP_RATIO} to {MAX_CATCH_UP_RATIO}: no slice "
        "is ever larger than this times its planned qty.",
        "anyOf": [
            {"type": "number", "minimum": int(MIN_CATCH_UP_RATIO),
             "maximum": int(MAX_CATCH_UP_RATIO), "multipleOf": 10.0**-RATIO_DECIMALS},
            {"type": "string", "pattern": RATIO_PATTERN},
        ],
        "default": str(DEFAULT_CATCH_UP_RATIO),
    }
    schema["allOf"] = [
        {
            "description": "exactly one of duration_seconds and duration_minutes",
            "oneOf": [
                {
                    "required": ["duration_seconds"],
                    "properties": {"duration_seconds": {"type": "integer"}},
                },
                {
                    "required": ["duration_minutes"],
                    "properties": {"duration_minutes": {"type": "integer"}},
                },
            ],
        },
        _price_rule("limit_price", ["limit", "stop_limit"]),
        _price_rule("stop_price", ["stop", "stop_limit"]),
    ]
    return schema


def _price_rule(field: str, order_types: list[str]) -> Schema:
    return {
        "description": f"{field} is required for {' and '.join(order_types)}, forbidden otherwise",
        "if": {"required": ["order_type"], "properties": {"order_type": {"enum": order_types}}},
        "then": {"required": [field], "properties": {field: {"not": {"type": "null"}}}},
        "else": {"properties": {field: {"type": "null"}}},
    }


def _control(command: str) -> Schema:
    schema = _model(ControlCommand, "validation")
    schema["title"] = f"Control {command}"
    schema["description"] = CONTROL_WHAT[command]
    schema["properties"]["type"] = {"const": command, "type": "string"}
    if command in NEEDS_REASON:
        schema["properties"]["reason"] = {
            "type": "string", "minLength": 1, "maxLength": 256, "pattern": TEXT_PATTERN,
        }
        schema["required"] = ["type", "reason"]
    return schema


def _access_control(model: type[BaseModel], command: str) -> Schema:
    schema = _model(model, "validation")
    schema["title"] = f"Control {command}"
    schema["description"] = CONTROL_WHAT[command]
    return schema


def _event(model: type[BaseModel], event_type: str) -> Schema:
    schema = _model(model, "serialization")
    schema["title"] = f"Event {event_type}"
    schema["description"] = EVENT_WHEN[event_type]
    # The worker writes every field (null when unknown), so all of them are always present.
    schema["required"] = list(schema["properties"])
    status = next((s for s, m in SLICE_EVENTS.items() if m is model), None)
    if status is not None:
        schema["properties"]["status"] = {"const": status.value, "type": "string"}
    return schema
