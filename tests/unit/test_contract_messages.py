"""Decoding, control commands, the error shape and the enums of the wire contract, exactly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from twap_schemas import (
    CancelRequest,
    ControlCommand,
    InvalidMessage,
    SubmitRequest,
    decode_object,
    parse_control,
    parse_request,
)
from twap_schemas.common import (
    SCHEMA_VERSION,
    Distribution,
    OrderType,
    Outcome,
    ParentStatus,
    Side,
    SliceStatus,
    TimeInForce,
)
from twap_schemas.errors import ErrorDetail, errors_from_validation
from twap_schemas.numbers import Unrepresentable
from twap_schemas.parse import REQUEST_TYPES


def failure(raw: bytes) -> tuple[str, list[tuple[str, str]], str]:
    with pytest.raises(InvalidMessage) as exc:
        decode_object(raw)
    return exc.value.kind, [(e.loc, e.msg) for e in exc.value.errors], str(exc.value)


# -- decoding ----------------------------------------------------------------------------------
def test_numbers_with_a_fraction_decode_as_decimal() -> None:
    """1.10 stays Decimal('1.10'); integers stay int."""
    assert decode_object(b'{"p": 1.10, "q": 3}') == {"p": Decimal("1.10"), "q": 3}
    assert isinstance(decode_object(b'{"q": 3}')["q"], int)


@pytest.mark.parametrize(("raw", "expected"), [
    (b"\xff", ("not_json", [("$", "not UTF-8 text: invalid start byte")],
               "not_json: $: not UTF-8 text: invalid start byte")),
    (b'{"a":', ("not_json", [("$", "not JSON: Expecting value: line 1 column 6 (char 5)")],
                "not_json: $: not JSON: Expecting value: line 1 column 6 (char 5)")),
    (b'{"q": Infinity}', ("not_json", [("$", "not JSON: Infinity is not a valid JSON number")],
                          "not_json: $: not JSON: Infinity is not a valid JSON number")),
    (b"5", ("not_object", [("$", "must be a JSON object, got int")],
            "not_object: $: must be a JSON object, got int")),
    (b"null", ("not_object", [("$", "must be a JSON object, got NoneType")],
               "not_object: $: must be a JSON object, got NoneType")),
])
def test_undecodable_bodies_say_why(raw: bytes, expected: tuple[str, list[tuple[str, str]],
                                                                 str]) -> None:
    """Each failure has its kind, one error at '$' and a message joining them."""
    assert failure(raw) == expected


LONE = ("not_json", [("$", "not UTF-8 text: a \\u escape names an unpaired surrogate")],
        "not_json: $: not UTF-8 text: a \\u escape names an unpaired surrogate")


@pytest.mark.parametrize("raw", [
    rb'{"s": "\ud800"}',  # a high half alone
    rb'{"s": "a\udfffb"}',  # a low half alone
    rb'{"\ud800": 1}',  # in a key
    rb'{"l": [1, ["\udc00"]]}',  # in a nested list
    rb'{"d": {"e": {"f": "\ud83d"}}}',  # in a nested object's value
    rb'{"d": {"\ude00": 0}}',  # in a nested object's key
])
def test_an_escaped_half_of_a_surrogate_pair_is_not_text(raw: bytes) -> None:
    """A \\u escape naming an unpaired UTF-16 surrogate, anywhere in the object, is not_json."""
    assert failure(raw) == LONE


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    """Both halves escaped are U+1F600, which is text; so is an escaped backslash before ud800."""
    assert decode_object(rb'{"s": "\ud83d\ude00"}') == {"s": "\U0001f600"}
    assert decode_object('{"s": "\U0001f600", "t": ["\\\\ud800"]}'.encode()) == {
        "s": "\U0001f600", "t": ["\\ud800"]}


@pytest.mark.parametrize("text", ["1e9999999999999999999", "-1.5e-9999999999999999999"])
def test_a_number_beyond_decimal_range_is_kept_as_its_text(text: str) -> None:
    """An exponent past what Decimal holds decodes to an Unrepresentable holding the text."""
    assert decode_object(f'{{"n": {text}}}'.encode()) == {"n": Unrepresentable(text)}


class _Exploding(BaseModel):
    """A model whose validation raises something other than a validation error."""

    @model_validator(mode="before")
    @classmethod
    def _explode(cls, data: object) -> object:
        raise RuntimeError("x" * 400)


def test_validation_that_raises_refuses_only_that_message(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Any exception in validation: 'schema' on '$' quoting it (300 chars max), and a warning."""
    monkeypatch.setitem(REQUEST_TYPES, "submit", _Exploding)  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="twap_schemas.parse"), pytest.raises(InvalidMessage) as exc:
        parse_request(b'{"type": "submit"}')
    expected = "could not be validated: RuntimeError('" + "x" * 262
    assert len(expected) == 300
    assert (exc.value.kind, exc.value.errors) == ("schema", [ErrorDetail(loc="$", msg=expected)])
    [record] = caplog.records
    assert (record.levelname, record.getMessage()) == ("WARNING", "request.validation_raised")
    assert record.__dict__["error"] == "RuntimeError('" + "x" * 186
    assert len(record.__dict__["error"]) == 200


def test_deeply_nested_json_is_not_json_rather_than_a_crash() -> None:
    """A nesting deep enough to exhaust the recursion limit is classified."""
    kind, errors, _ = failure(b"[" * 50_000)
    assert kind == "not_json" and errors[0][0] == "$"


def test_request_types_are_submit_and_cancel() -> None:
    """The type field dispatches to exactly these two models."""
    assert REQUEST_TYPES == {"submit": SubmitRequest, "cancel": CancelRequest}


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"type": "modify"}', "must be 'submit' or 'cancel', got 'modify'"),
    (b'{"type": 5}', "must be 'submit' or 'cancel', got 5"),
    (b"{}", "must be 'submit' or 'cancel', got None"),
])
def test_unknown_request_type_names_what_it_got(raw: bytes, message: str) -> None:
    """An unknown or missing type is 'unknown_type' on the type field."""
    with pytest.raises(InvalidMessage) as exc:
        parse_request(raw)
    assert exc.value.kind == "unknown_type"
    assert exc.value.errors == [ErrorDetail(loc="type", msg=message)]


# -- the error shape ---------------------------------------------------------------------------
def test_missing_extra_and_pattern_errors_are_reworded() -> None:
    """Pydantic's wording is replaced by the contract's, in the order pydantic found them."""
    with pytest.raises(InvalidMessage) as exc:
        parse_request(json.dumps({"type": "submit", "strategy_id": "a b", "symbol": "$",
                                  "qty": 1, "duration_seconds": 1, "colour": 1}).encode())
    assert exc.value.kind == "schema"
    assert [(e.loc, e.msg) for e in exc.value.errors] == [
        ("strategy_id", "must be 1-64 characters of A-Z a-z 0-9 _ -"),
        ("symbol", "must be 1-16 characters of letters, digits, '.' and '/'"),
        ("side", "field required"),
        ("colour", "unknown field (not part of the contract; check its spelling)"),
    ]


def test_a_model_level_error_is_located_at_the_root() -> None:
    """An error without a field is reported at '$', without pydantic's 'Value error, ' prefix."""
    assert errors_from_validation(_validation_error(ControlCommand, {"type": "breaker.trip"})) == [
        ErrorDetail(loc="$", msg="reason is required for breaker.trip")]


def test_nested_locations_are_dotted() -> None:
    """('slices', 0, 'qty') is reported as 'slices.0.qty'."""

    class Inner(BaseModel):
        qty: int

    class Outer(BaseModel):
        slices: list[Inner]

    err = _validation_error(Outer, {"slices": [{"qty": 1}, {"qty": "x"}]})
    assert [e.loc for e in errors_from_validation(err)] == ["slices.1.qty"]


def _validation_error(model: type[BaseModel], value: object) -> ValidationError:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(value)
    return exc.value


# -- control commands --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["kill_switch.engage", "breaker.trip"])
def test_engage_and_trip_need_a_reason(kind: str) -> None:
    """Without a reason the command is refused at '$' naming the type; with one it passes."""
    with pytest.raises(InvalidMessage) as exc:
        parse_control(json.dumps({"type": kind}).encode())
    assert (exc.value.kind, exc.value.errors) == (
        "schema", [ErrorDetail(loc="$", msg=f"reason is required for {kind}")])
    cmd = parse_control(json.dumps({"type": kind, "reason": "r", "operator": "ops"}).encode())
    assert (cmd.type, cmd.reason, cmd.operator) == (kind, "r", "ops")


@pytest.mark.parametrize("kind", ["kill_switch.release", "breaker.reset"])
def test_release_and_reset_need_no_reason(kind: str) -> None:
    """Releasing the switch or resetting the breaker takes the type alone."""
    cmd = parse_control(json.dumps({"type": kind}).encode())
    assert (cmd.type, cmd.reason, cmd.operator) == (kind, None, None)


def test_control_field_limits() -> None:
    """reason 1-256 and operator up to 64 characters; beyond, each is refused."""
    cmd = parse_control(json.dumps({"type": "breaker.trip", "reason": "r" * 256,
                                    "operator": "o" * 64}).encode())
    assert isinstance(cmd, ControlCommand)
    assert (len(cmd.reason or ""), len(cmd.operator or "")) == (256, 64)
    with pytest.raises(InvalidMessage) as exc:
        parse_control(json.dumps({"type": "breaker.trip", "reason": "r" * 257,
                                  "operator": "o" * 65, "x": 1}).encode())
    assert [(e.loc, e.msg) for e in exc.value.errors] == [
        ("reason", "String should have at most 256 characters"),
        ("operator", "String should have at most 64 characters"),
        ("x", "unknown field (not part of the contract; check its spelling)"),
    ]
    with pytest.raises(InvalidMessage) as exc:
        parse_control(b'{"type": "breaker.reset", "reason": ""}')
    assert exc.value.errors == [
        ErrorDetail(loc="reason", msg="String should have at least 1 character")]


def test_control_text_refuses_nul() -> None:
    """reason and operator refuse NUL (no text column holds it), each naming it."""
    with pytest.raises(InvalidMessage) as exc:
        parse_control(json.dumps({"type": "breaker.trip", "reason": "a\x00",
                                  "operator": "\x00b"}).encode())
    assert [(e.loc, e.msg) for e in exc.value.errors] == [
        ("reason", "must not contain the NUL character (U+0000)"),
        ("operator", "must not contain the NUL character (U+0000)"),
    ]


def test_unknown_control_type_lists_the_four() -> None:
    """A type outside the four is refused with the list."""
    with pytest.raises(InvalidMessage) as exc:
        parse_control(b'{"type": "kill_switch.toggle"}')
    assert exc.value.errors == [ErrorDetail(loc="type", msg=(
        "Input should be 'kill_switch.engage', 'kill_switch.release', 'breaker.trip' or "
        "'breaker.reset'"))]


# -- enums -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("enum", "values"), [
    (Side, ["buy", "sell"]),
    (OrderType, ["market", "limit", "stop", "stop_limit"]),
    (TimeInForce, ["day", "gtc", "ioc", "fok"]),
    (Distribution, ["front_loaded", "even_random"]),
    (SliceStatus, ["scheduled", "submitting", "submitted", "blocked_kill_switch",
                   "blocked_circuit_breaker", "canceled", "rejected", "failed", "expired",
                   "filled", "closed", "blocked_risk"]),
    (ParentStatus, ["active", "completed", "canceled"]),
    (Outcome, ["accepted", "duplicate", "rejected"]),
])
def test_enum_values_are_the_wire_contract(enum: type, values: list[str]) -> None:
    """Each enumeration has exactly these wire values, in this order."""
    assert [member.value for member in enum] == values  # type: ignore[attr-defined]


def test_schema_version_is_two() -> None:
    """Events declare schema version 2 (contract v2 added fields, renamed none)."""
    assert SCHEMA_VERSION == 2


def test_invalid_message_text_lists_every_error() -> None:
    """str(InvalidMessage) is the kind, then each 'loc: msg' joined by '; '."""
    exc = InvalidMessage("schema", [ErrorDetail(loc="qty", msg="bad"),
                                    ErrorDetail(loc="side", msg="worse")])
    assert str(exc) == "schema: qty: bad; side: worse"


def test_error_details_are_immutable() -> None:
    """An ErrorDetail cannot be changed once made."""
    detail = ErrorDetail(loc="qty", msg="bad")
    with pytest.raises(ValidationError, match="frozen"):
        detail.msg = "fine"  # type: ignore[misc]


def test_control_commands_are_immutable() -> None:
    """A parsed control command cannot be changed."""
    cmd = parse_control(b'{"type": "breaker.reset"}')
    with pytest.raises(ValidationError, match="frozen"):
        cmd.reason = "x"  # type: ignore[misc]
