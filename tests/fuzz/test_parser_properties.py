"""The parser never raises anything but a clean rejection, whatever the body: extreme numbers,
dates, offsets, unicode and nesting, on both queues."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings

from tests.fuzz.extremes import access_bodies, any_bodies, bodies
from twap_schemas.control import GrantsSet, LimitsSet
from twap_schemas.parse import InvalidMessage, parse_control
from twap_schemas.requests import RequestContext
from worker.core.access import ACTIONS, Grant
from worker.core.intake import Inbound, Invalid, classify
from worker.core.risk import Limits

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
CTX = RequestContext(now=NOW, misfire_grace=timedelta(seconds=60))
KINDS = {"not_json", "not_object", "unknown_type", "schema", "plan", "too_large"}
PROPERTY = settings(max_examples=400, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


def _check_request(body: bytes) -> None:
    item = classify(Inbound(body, message_id="m" * 80), CTX, NOW)
    assert isinstance(item, Invalid), "a message_id over 64 characters is refused"
    assert item.kind in KINDS and item.errors
    assert all(e.loc and e.msg for e in item.errors)
    assert item.inbound.message_id == "m" * 64, "the rejection carries an id the store holds"
    item = classify(Inbound(body), CTX, NOW)
    if isinstance(item, Invalid):
        assert item.kind in KINDS and item.errors, item


def _check_control(body: bytes) -> None:
    try:
        parse_control(body)
    except InvalidMessage as exc:
        assert exc.kind in KINDS and exc.errors


@PROPERTY
@given(bodies("requests"))
def test_request_parser_only_ever_rejects_cleanly(body: bytes) -> None:
    """Any `N.requests` body is planned or becomes one Invalid with its errors; never raises."""
    _check_request(body)


@PROPERTY
@given(bodies("control"))
def test_control_parser_only_ever_rejects_cleanly(body: bytes) -> None:
    """Any `N.control` body is a command or an InvalidMessage with its errors; never raises."""
    _check_control(body)


@PROPERTY
@given(any_bodies())
def test_both_parsers_survive_anything(body: bytes) -> None:
    """Bare values, deep nesting, raw bytes: both queues' parsers reject cleanly."""
    _check_request(body)
    _check_control(body)


@PROPERTY
@given(access_bodies())
def test_limit_and_grant_messages_only_ever_reject_cleanly(body: bytes) -> None:
    """Any `limits.set` / `grants.set` body is refused with its errors, or is one the store
    can keep: its limits apply to a row and survive the row's JSON form."""
    try:
        command = parse_control(body)
    except InvalidMessage as exc:
        assert exc.kind in KINDS and exc.errors
        assert all(e.loc and e.msg for e in exc.errors)
        return
    if isinstance(command, LimitsSet):
        row = Limits(max_qty=1).changed(command.changes())
        assert Limits.from_json(json.loads(json.dumps(row.to_json()))) == row
    elif isinstance(command, GrantsSet):
        grant = Grant.of(command.user, command.strategies, command.actions, command.operator)
        assert grant.to_json()["actions"] == [a for a in ACTIONS if a in command.actions]


def test_the_reported_poison_values_are_rejected_by_field() -> None:
    """The values that used to raise (OverflowError, InvalidOperation) name their field."""
    base = (b'{"type":"submit","strategy_id":"a","symbol":"AAPL","side":"buy",'
            b'"duration_seconds":60,')
    for tail, loc in [
        (b'"qty":1e99999999999999999999}', "qty"),
        (b'"qty":10,"start_at":"0001-01-01T00:00:00+01:00"}', "start_at"),
        (b'"qty":10,"start_at":"9999-12-31T23:59:59-01:00"}', "start_at"),
    ]:
        item = classify(Inbound(base + tail), CTX, NOW)
        assert isinstance(item, Invalid) and loc in {e.loc for e in item.errors}, item
    try:
        parse_control(b'{"type":"kill_switch.engage","reason":"x","operator":1e99999999999999999999}')
    except InvalidMessage as exc:
        assert exc.kind == "schema" and exc.errors[0].loc == "operator"
    else:
        raise AssertionError("accepted")
