"""The checked-in JSON Schemas: current, and agreeing with what the worker accepts and writes."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from schemas.common import SliceStatus
from schemas.errors import ErrorDetail
from schemas.export import ROOT, SCHEMA_DIR, stale
from schemas.parse import InvalidMessage, parse_control, parse_request
from schemas.replies import Reply
from schemas.requests import SubmitRequest
from worker.core import events
from worker.core.planning import build_plan
from worker.core.states import TERMINAL


def validator(file_name: str) -> Draft7Validator:
    schema = json.loads((ROOT / SCHEMA_DIR / file_name).read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


def test_checked_in_schemas_match_the_models() -> None:
    """Regenerating from the pydantic models gives exactly the committed files."""
    assert stale() == [], "run `python -m schemas.export` and commit the result"


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
        events.parent_accepted(parent, slices),
        events.parent_canceled(parent, 2, 1, "enough"),
        events.parent_completed(parent, {SliceStatus.SUBMITTED: (5, 103)}),
    ]
    sent = dataclasses.replace(
        slices[0],
        status=SliceStatus.SUBMITTED,
        broker_order_id="b1",
        attempts=1,
        sent_at=datetime.now(UTC),
    )
    out.append(events.slice_event(parent, sent))
    for status in sorted(TERMINAL - {SliceStatus.SUBMITTED}):
        out.append(
            events.slice_event(parent, dataclasses.replace(slices[1], status=status), reason="why")
        )
    errors = [ErrorDetail(loc="qty", msg="must be at least 1")]
    out.append(events.request_rejected(errors, message_id="m", correlation_id=None))
    out.append(
        events.request_duplicate(
            parent.parent_order_id, "alpha_1", message_id=None, correlation_id="c"
        )
    )
    for switch in ("kill_switch", "breaker"):
        for engaged in (True, False):
            out.append(
                events.control_changed(switch, engaged, reason="r", operator=None, automatic=False)
            )
    messages = [(m.type or "", m.body) for m in out]
    for reply in (
        events.accepted_reply(parent, slices),
        Reply(outcome="rejected", errors=errors),  # type: ignore[arg-type]
        Reply(outcome="duplicate", type="submit", parent_order_id="p"),
    ):  # type: ignore[arg-type]
        messages.append(("reply", events.reply("q", "c", reply).body))
    return messages


def test_every_written_event_and_reply_matches_its_schema() -> None:
    """Events of all 16 types and replies of each outcome validate against the checked-in files."""
    messages = written_messages()
    assert len({kind for kind, _ in messages if kind != "reply"}) == 16
    for kind, body in messages:
        name = "reply.json" if kind == "reply" else f"event.{kind}.json"
        errors = [e.message for e in validator(name).iter_errors(json.loads(body))]
        assert errors == [], (kind, errors)
