"""The checked-in JSON Schemas: current, and agreeing with what the worker accepts and writes."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft7Validator, ValidationError, validators

from tests.fuzz.extremes import CONTROL_TYPES, Raw, bodies, dumps
from twap_schemas.common import SliceStatus
from twap_schemas.errors import ErrorDetail
from twap_schemas.export import ROOT, SCHEMA_DIR, stale
from twap_schemas.parse import InvalidMessage, parse_control, parse_request
from twap_schemas.replies import Reply
from twap_schemas.requests import RequestContext, SubmitRequest
from worker.core import events
from worker.core.intake import Inbound, Invalid, classify
from worker.core.planning import build_plan
from worker.core.states import TERMINAL


def validator(file_name: str) -> Draft7Validator:
    schema = json.loads((ROOT / SCHEMA_DIR / file_name).read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


def test_checked_in_schemas_match_the_models() -> None:
    """Regenerating from the pydantic models gives exactly the committed files."""
    assert stale() == [], "run `python -m twap_schemas.export` and commit the result"


def test_stale_file_is_detected(tmp_path: Path) -> None:
    """A schema edited by hand (or left behind) is reported as stale."""
    (tmp_path / SCHEMA_DIR).mkdir(parents=True)
    (tmp_path / SCHEMA_DIR / "request.submit.json").write_text("{}\n")
    (tmp_path / SCHEMA_DIR / "event.gone.json").write_text("{}\n")
    problems = stale(tmp_path)
    assert str(SCHEMA_DIR / "request.submit.json") in problems
    assert any("event.gone.json" in p for p in problems)


SUBMIT = {
    "type": "submit",
    "strategy_id": "alpha_1",
    "symbol": "AAPL",
    "side": "buy",
    "qty": 103,
    "duration_seconds": 300,
}
REQUESTS: list[dict[str, Any]] = [
    SUBMIT,
    {**SUBMIT, "order_type": "limit", "limit_price": "150.25"},
    {**SUBMIT, "order_type": "stop_limit", "limit_price": 150, "stop_price": 149.5},
    {**SUBMIT, "duration_seconds": None, "duration_minutes": 5, "start_at": "2030-01-02T14:30:00Z"},
    {**SUBMIT, "limit_prce": "150"},  # typo: unknown field
    {**SUBMIT, "duration_minutes": 5},  # both durations
    {k: v for k, v in SUBMIT.items() if k != "duration_seconds"},  # no duration
    {**SUBMIT, "order_type": "limit"},  # limit without limit_price
    {**SUBMIT, "limit_price": "150"},  # market with limit_price
    {**SUBMIT, "order_type": "stop", "stop_price": "-1"},
    {**SUBMIT, "side": "hold"},
    {**SUBMIT, "strategy_id": "has space"},
    {**SUBMIT, "qty": 0},
    {**SUBMIT, "qty": "10"},
    {"type": "cancel", "parent_order_id": "abc", "reason": "done"},
    {"type": "cancel"},
]


@pytest.mark.parametrize("body", REQUESTS, ids=lambda b: json.dumps(b, sort_keys=True)[:70])
def test_request_schema_agrees_with_the_worker(body: dict[str, Any]) -> None:
    """The JSON Schema accepts a request exactly when the worker's validation does."""
    try:
        parse_request(json.dumps(body).encode())
        worker_accepts = True
    except InvalidMessage:
        worker_accepts = False
    schema_accepts = validator(f"request.{body['type']}.json").is_valid(body)
    assert schema_accepts == worker_accepts


CONTROLS: list[dict[str, Any]] = [
    {"type": "kill_switch.engage", "reason": "halt", "operator": "ops"},
    {"type": "kill_switch.engage"},
    {"type": "kill_switch.release"},
    {"type": "breaker.trip"},
    {"type": "breaker.reset", "operator": "ops", "extra": 1},
]


@pytest.mark.parametrize("body", CONTROLS, ids=lambda b: json.dumps(b, sort_keys=True))
def test_control_schema_agrees_with_the_worker(body: dict[str, Any]) -> None:
    """Each control type's schema accepts a command exactly when the worker does."""
    try:
        parse_control(json.dumps(body).encode())
        worker_accepts = True
    except InvalidMessage:
        worker_accepts = False
    assert validator(f"control.{body['type']}.json").is_valid(body) == worker_accepts


def written_messages() -> list[tuple[str, bytes]]:
    """One of every event and reply, as the worker's own builders write them."""
    request = SubmitRequest.model_validate({**SUBMIT, "order_type": "limit", "limit_price": "1.5"})
    parent, slices = build_plan(request, now=datetime.now(UTC))
    out = [
        events.parent_accepted(parent, slices, at=NOW),
        events.parent_canceled(parent, 2, 1, "enough", at=NOW),
        events.parent_completed(dataclasses.replace(parent, filled_qty=3, notional=Decimal("4.5")),
                                {SliceStatus.FILLED: (5, 103)}, at=NOW),
    ]
    sent = dataclasses.replace(
        slices[0],
        status=SliceStatus.SUBMITTED,
        broker_order_id="b1",
        attempts=1,
        sent_at=datetime.now(UTC),
    )
    out.append(events.slice_event(parent, sent, at=NOW))
    for status in sorted(TERMINAL):
        out.append(
            events.slice_event(parent, dataclasses.replace(slices[1], status=status), reason="why",
                               at=NOW)
        )
    filling = dataclasses.replace(sent, filled_qty=2, fill_notional=Decimal("300.5"))
    out.append(events.slice_fill(
        dataclasses.replace(parent, filled_qty=2, notional=Decimal("300.5")), filling,
        fill_qty=2, fill_price=Decimal("150.25"), filled_at=NOW, at=NOW))
    errors = [ErrorDetail(loc="qty", msg="must be at least 1")]
    out.append(events.request_rejected(errors, message_id="m", correlation_id=None, at=NOW))
    out.append(
        events.request_duplicate(
            parent.parent_order_id, "alpha_1", message_id=None, correlation_id="c", at=NOW
        )
    )
    for switch in ("kill_switch", "breaker"):
        for engaged in (True, False):
            out.append(
                events.control_changed(switch, engaged, reason="r", operator=None, automatic=False,
                                       at=NOW)
            )
    out.append(events.limits_changed("*", None, {"max_qty": 10, "max_notional": "2500000.5",
                                                 "restricted_symbols": ["GME"]},
                                      operator="alice", reason="desk", at=NOW))
    out.append(events.grants_changed(
        "strat_alpha", {"user": "strat_alpha", "strategies": [], "actions": [], "operator": False},
        {"user": "strat_alpha", "strategies": ["alpha_1"], "actions": ["submit"],
         "operator": False}, operator="alice", reason=None, at=NOW))
    messages = [(m.type or "", m.body) for m in out]
    for reply in (
        events.accepted_reply(parent, slices),
        Reply(outcome="rejected", errors=errors),  # type: ignore[arg-type]
        Reply(outcome="duplicate", type="submit", parent_order_id="p"),
    ):  # type: ignore[arg-type]
        messages.append(("reply", events.reply("q", "c", reply).body))
    return messages


def test_every_written_event_and_reply_matches_its_schema() -> None:
    """Events of all 22 types and replies of each outcome validate against the checked-in files."""
    messages = written_messages()
    assert len({kind for kind, _ in messages if kind != "reply"}) == 22
    for kind, body in messages:
        name = "reply.json" if kind == "reply" else f"event.{kind}.json"
        errors = [e.message for e in validator(name).iter_errors(json.loads(body))]
        assert errors == [], (kind, errors)


# ---- Agreement over a generated corpus -------------------------------------------------------
#
# The worker's verdict (worker.core.intake.classify for requests, parse_control for control)
# and the published schema's (the jsonschema package, format checking on) must agree on every
# generated body. Excluded, because no JSON Schema can state them, are the worker's semantic
# refusals, all of reason `plan`: start_at outside the start window (further back than the
# misfire grace, more than 7 days ahead, before year 1 in UTC), qty or duration over the
# configured maximum, qty below the slice count, more slices than the maximum, an interval
# under 1 s after max_slice_qty. A body that is not Unicode JSON at all (an escaped unpaired
# surrogate, reason `not_json`) has no schema verdict: it must be refused as not_json.

NOW = datetime(2030, 1, 1, 11, 59, tzinfo=UTC)
CORPUS = settings(max_examples=400, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
HUGE = 1_000  # exponents beyond this stand for "beyond every bound" (exact enough, and cheap)


def _exact(text: str) -> Fraction:
    """A JSON number as its exact value, as the worker reads it (JSON Schema compares exact
    values; floats would round 1.23456789 off a multiple of 1e-8)."""
    match = re.fullmatch(r"(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?", text)
    assert match is not None, text
    sign = -1 if match[1] else 1
    exponent = int(match[4] or 0)
    if not (match[2] + (match[3] or "")).strip("0"):
        return Fraction(0)
    if exponent > HUGE or len(text) > HUGE:
        return sign * Fraction(10**HUGE)
    if exponent < -HUGE:
        return sign * Fraction(1, 10**HUGE)
    return Fraction(text)


def _load(raw: bytes | str) -> Any:
    value = json.loads(raw, parse_float=_exact, parse_int=_exact)
    if re.search(r"\\u[dD][89a-fA-F]", raw if isinstance(raw, str) else raw.decode()):
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str) and re.search("[\ud800-\udfff]", item):
                raise UnicodeError("unpaired surrogate")
            if isinstance(item, dict):
                stack += [*item, *item.values()]
            elif isinstance(item, list):
                stack += item
    return value


def _integer(checker: Any, instance: Any) -> bool:
    # JSON Schema: an integer is any number with a zero fractional part (100.0 is one).
    return not isinstance(instance, bool) and (
        isinstance(instance, int) or (isinstance(instance, Fraction) and instance.denominator == 1)
    )


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # JSON Schema's patterns are ECMA 262, where `$` is the end of the text; Python's `$` also
    # matches before a final newline. Every published pattern ends with `$`.
    if validator.is_type(instance, "string"):
        python = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if not re.search(python, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


ExactValidator = validators.extend(
    Draft7Validator,
    validators={"pattern": _ecma_pattern},
    type_checker=Draft7Validator.TYPE_CHECKER.redefine("integer", _integer),
)


def exact_validator(file_name: str) -> Any:
    schema = _load((ROOT / SCHEMA_DIR / file_name).read_text())
    return ExactValidator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


SCHEMAS = {
    "requests": {t: exact_validator(f"request.{t}.json") for t in ("submit", "cancel")},
    "control": {t: exact_validator(f"control.{t}.json") for t in CONTROL_TYPES},
}


def schema_accepts(queue: str, raw: bytes) -> bool | None:
    """The published schema's verdict; None when the body is not Unicode JSON."""
    try:
        value = _load(raw)
    except UnicodeError:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    validator = SCHEMAS[queue].get(kind) if isinstance(kind, str) else None
    return validator is not None and validator.is_valid(value)


def worker_verdict(queue: str, raw: bytes) -> str:
    """"accepted", or the reason the worker refuses the body with."""
    if queue == "control":
        try:
            parse_control(raw)
        except InvalidMessage as exc:
            return exc.kind
        return "accepted"
    item = classify(Inbound(raw), RequestContext(now=NOW), NOW)
    return item.kind if isinstance(item, Invalid) else "accepted"


def _agree(queue: str, raw: bytes) -> None:
    schema, worker = schema_accepts(queue, raw), worker_verdict(queue, raw)
    if schema is None:
        assert worker == "not_json", raw
    elif worker == "plan":
        assert schema, f"the schema refuses what the worker calls a plan error: {raw!r}"
    else:
        assert schema == (worker == "accepted"), f"schema {schema}, worker {worker}: {raw!r}"


@CORPUS
@given(bodies("requests"))
def test_schema_and_worker_agree_on_generated_requests(raw: bytes) -> None:
    """Submits and cancels, valid and not: the published schema and the worker agree."""
    _agree("requests", raw)


@CORPUS
@given(bodies("control"))
def test_schema_and_worker_agree_on_generated_control(raw: bytes) -> None:
    """Control commands, valid and not: the published schema and the worker agree."""
    _agree("control", raw)


@pytest.mark.parametrize("body", [
    {**SUBMIT, "order_type": "limit", "limit_price": "0"},
    {**SUBMIT, "order_type": "limit", "limit_price": "150.123456789"},
    {**SUBMIT, "order_type": "limit", "limit_price": "1234567890123"},
    {**SUBMIT, "order_type": "limit", "limit_price": Raw("150.123456789")},
    {**SUBMIT, "order_type": "limit", "limit_price": Raw("1e12")},
    {**SUBMIT, "order_type": "limit", "limit_price": Raw("1.23456789")},
    {**SUBMIT, "qty": Raw("100.0")},
    {**SUBMIT, "qty": Raw("1e2")},
    {**SUBMIT, "start_at": "2030-01-01T14:00:00+0200"},
    {**SUBMIT, "start_at": "2030-01-01 12:00:00Z"},
    {**SUBMIT, "interval_seconds": 2**31},
    {"type": "cancel", "parent_order_id": "a" * 25},
], ids=lambda b: dumps(b)[-60:])
def test_reported_disagreements_are_gone(body: dict[str, Any]) -> None:
    """The cases the schema used to accept and the worker refuse now get one verdict."""
    _agree("requests", dumps(body).encode())
