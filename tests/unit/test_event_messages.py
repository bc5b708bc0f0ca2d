"""The outbox messages the core builds: every field of every event, reply and dead letter."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from twap_schemas.common import (
    Distribution,
    OrderType,
    Outcome,
    ParentStatus,
    Side,
    SliceStatus,
    TimeInForce,
)
from twap_schemas.errors import ErrorDetail
from twap_schemas.replies import Reply
from worker.core import events
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord, SwitchState

START = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
AT = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)  # when the events happen: the builders take the clock
PARENT = ParentRecord(
    parent_order_id="p1", strategy_id="alpha", symbol="AAPL", side=Side.BUY, qty=10,
    order_type=OrderType.LIMIT, limit_price=Decimal("150.25"), stop_price=None,
    time_in_force=TimeInForce.DAY, duration_seconds=120, interval_seconds=60, max_slice_qty=None,
    distribution=Distribution.FRONT_LOADED, start_at=START, trade_date=date(2024, 5, 1),
    request_id=None, submitted_by=None, total_slices=2,
)
SLICES = [SliceRecord("p1", 0, "c0", 5, START), SliceRecord("p1", 1, "c1", 5, START + timedelta(
    minutes=1))]
PARENT_FIELDS = {"schema_version": 2, "parent_order_id": "p1", "strategy_id": "alpha",
                 "symbol": "AAPL", "side": "buy"}
PLAN = [{"slice_num": 0, "client_order_id": "c0", "qty": 5,
         "scheduled_time": "2024-05-01T14:00:00Z"},
        {"slice_num": 1, "client_order_id": "c1", "qty": 5,
         "scheduled_time": "2024-05-01T14:01:00Z"}]


def fields(message: OutboxMessage) -> dict[str, Any]:
    """The body without its random id and clock, after checking both are there."""
    body = json.loads(message.body)
    assert str(uuid.UUID(body.pop("event_id"))) == message.message_id
    assert body.pop("occurred_at").endswith("Z")
    return body


def envelope(message: OutboxMessage) -> tuple[Any, ...]:
    return (message.exchange, message.routing_key, message.type, message.parent_order_id,
            message.correlation_id, message.headers)


# -- records -----------------------------------------------------------------------------------
def test_record_defaults() -> None:
    """A new parent is active; a new slice is scheduled, unsent, never attempted."""
    assert (PARENT.status, PARENT.created_at) == (ParentStatus.ACTIVE, None)
    s = SLICES[0]
    assert (s.status, s.broker_order_id, s.attempts, s.reason, s.sent_at) == (
        SliceStatus.SCHEDULED, None, 0, None, None)
    m = OutboxMessage("events", "k", b"")
    assert (m.message_id, m.type, m.correlation_id, m.parent_order_id, m.headers) == (
        None, None, None, None, {})


def test_switch_state_fails_closed() -> None:
    """Unreadable switch state counts as both switches engaged, with the reason on both."""
    state = SwitchState.fail_closed("database away")
    assert state == SwitchState(True, "database away", True, "database away", 0)
    assert SwitchState(False, None, False, None).consecutive_failures == 0


# -- parent events -----------------------------------------------------------------------------
def test_parent_accepted_carries_the_whole_plan() -> None:
    """parent.accepted on events, keyed by strategy, with prices exact and every slice."""
    message = events.parent_accepted(PARENT, SLICES, at=AT)
    assert envelope(message) == ("events", "parent.accepted.alpha", "parent.accepted", "p1",
                                 None, {})
    assert fields(message) == {
        **PARENT_FIELDS, "event_type": "parent.accepted", "total_qty": 10, "total_slices": 2,
        "interval_seconds": 60, "order_type": "limit", "limit_price": "150.25",
        "stop_price": None, "time_in_force": "day", "start_at": "2024-05-01T14:00:00Z",
        "trade_date": "2024-05-01", "slices": PLAN}


def test_parent_canceled_counts() -> None:
    """parent.canceled says what was canceled, what was in flight and at the broker."""
    message = events.parent_canceled(PARENT, 3, 1, "stop", working=2, at=AT)
    assert envelope(message)[:3] == ("events", "parent.canceled.alpha", "parent.canceled")
    assert fields(message) == {**PARENT_FIELDS, "event_type": "parent.canceled",
                               "canceled_slices": 3, "in_flight_slices": 1, "reason": "stop",
                               "working_orders_canceled": 2, "filled_qty": 0}
    assert fields(events.parent_canceled(PARENT, 0, 0, None, at=AT))["working_orders_canceled"] == 0


def test_parent_completed_tallies_by_status() -> None:
    """submitted_qty is the qty of slices whose order reached the broker (filled or closed
    there), 0 when none went out; fills, average, notional and outcome from the parent."""
    tallies = {SliceStatus.FILLED: (1, 5), SliceStatus.CLOSED: (1, 3),
               SliceStatus.REJECTED: (1, 2)}
    parent = replace(PARENT, filled_qty=7, notional=Decimal("1050.10"))
    body = fields(events.parent_completed(parent, tallies, at=AT))
    assert body == {**PARENT_FIELDS, "event_type": "parent.completed", "total_qty": 10,
                    "total_slices": 2, "submitted_qty": 8,
                    "by_status": {"filled": {"count": 1, "qty": 5},
                                  "closed": {"count": 1, "qty": 3},
                                  "rejected": {"count": 1, "qty": 2}},
                    "filled_qty": 7, "unfilled_qty": 3, "avg_fill_price": "150.0142857143",
                    "notional": "1050.10", "outcome": "partial"}
    none_sent = fields(events.parent_completed(PARENT, {SliceStatus.CANCELED: (2, 10)}, at=AT))
    assert (none_sent["submitted_qty"], none_sent["outcome"], none_sent["avg_fill_price"]) == (
        0, "unfilled", None)
    full = fields(events.parent_completed(replace(PARENT, filled_qty=10,
                                                  notional=Decimal("1500")),
                                          {SliceStatus.FILLED: (2, 10)}, at=AT))
    assert (full["outcome"], full["unfilled_qty"], full["avg_fill_price"]) == (
        "filled", 0, "150.0000000000")


def test_slice_fill_carries_the_increment_and_both_totals() -> None:
    """slice.fill: this fill's qty and price, the slice's and the parent's totals after it."""
    record = replace(SLICES[0], status=SliceStatus.SUBMITTED, broker_order_id="b0",
                     filled_qty=3, fill_notional=Decimal("450.75"))
    parent = replace(PARENT, filled_qty=4, notional=Decimal("600.75"))
    message = events.slice_fill(parent, record, fill_qty=2, fill_price=Decimal("150.25"),
                                filled_at=AT, at=AT)
    assert envelope(message)[:3] == ("events", "slice.fill.alpha", "slice.fill")
    assert fields(message) == {**slice_fields(0, "submitted"), "event_type": "slice.fill",
                               "broker_order_id": "b0", "filled_qty": 3,
                               "avg_fill_price": "150.2500000000", "fill_qty": 2,
                               "fill_price": "150.25", "parent_filled_qty": 4,
                               "parent_avg_fill_price": "150.1875000000",
                               "filled_at": "2024-05-01T15:00:00Z"}


def test_filled_and_closed_slices_report_their_fills() -> None:
    """slice.filled: filled qty and average; slice.closed adds the unfilled qty and why."""
    filled = replace(SLICES[0], status=SliceStatus.FILLED, broker_order_id="b0", filled_qty=5,
                     fill_notional=Decimal("751"))
    assert fields(events.slice_event(PARENT, filled, at=AT)) == {
        **slice_fields(0, "filled"), "broker_order_id": "b0", "filled_qty": 5,
        "avg_fill_price": "150.2000000000"}
    closed = replace(SLICES[1], status=SliceStatus.CLOSED, broker_order_id="b1", filled_qty=0)
    assert fields(events.slice_event(PARENT, closed, reason="slice end", at=AT)) == {
        **slice_fields(1, "closed"), "broker_order_id": "b1", "filled_qty": 0,
        "avg_fill_price": None, "unfilled_qty": 5, "reason": "slice end"}


# -- slice events ------------------------------------------------------------------------------
def slice_fields(num: int, status: str) -> dict[str, Any]:
    return {**PARENT_FIELDS, **PLAN[num], "event_type": f"slice.{status}", "status": status,
            "filled_qty": 0, "avg_fill_price": None}


def test_submitted_slice_reports_attempts_and_lateness() -> None:
    """slice.submitted: broker id, attempts, sent_at and lateness in ms to the microsecond."""
    record = replace(SLICES[1], status=SliceStatus.SUBMITTED, broker_order_id="b1", attempts=2,
                     sent_at=SLICES[1].scheduled_time + timedelta(microseconds=1500))
    message = events.slice_event(PARENT, record, at=AT)
    assert envelope(message)[:4] == ("events", "slice.submitted.alpha", "slice.submitted", "p1")
    assert fields(message) == {**slice_fields(1, "submitted"), "broker_order_id": "b1",
                               "attempts": 2, "sent_at": "2024-05-01T14:01:00.001500Z",
                               "lateness_ms": 1.5}


def test_submitted_slice_lateness_is_rounded_to_the_microsecond() -> None:
    """1234.5678 ms late is reported as 1234.568 ms."""
    record = replace(SLICES[0], status=SliceStatus.SUBMITTED, attempts=1,
                     sent_at=START + timedelta(microseconds=1_234_568))
    assert fields(events.slice_event(PARENT, record, at=AT))["lateness_ms"] == 1234.568


def test_submitted_slice_without_sent_at_has_no_lateness() -> None:
    """A submitted slice found at the broker after a crash has no send time to measure from."""
    record = replace(SLICES[0], status=SliceStatus.SUBMITTED, attempts=1)
    assert fields(events.slice_event(PARENT, record, at=AT)) == {
        **slice_fields(0, "submitted"), "broker_order_id": None, "attempts": 1,
        "sent_at": None, "lateness_ms": None}


@pytest.mark.parametrize("status", ["rejected", "failed", "expired"])
def test_unsent_slices_say_why_and_how_often_tried(status: str) -> None:
    """rejected/failed/expired: the given reason, else the record's, else the status itself."""
    record = replace(SLICES[0], status=SliceStatus(status), attempts=3, reason="stored")
    given = fields(events.slice_event(PARENT, record, reason="given", at=AT))
    assert given == {**slice_fields(0, status), "broker_order_id": None, "attempts": 3,
                     "reason": "given"}
    assert fields(events.slice_event(PARENT, record, at=AT))["reason"] == "stored"
    bare = replace(record, reason=None)
    assert fields(events.slice_event(PARENT, bare, at=AT))["reason"] == status


@pytest.mark.parametrize("status", ["blocked_kill_switch", "blocked_circuit_breaker",
                                    "canceled"])
def test_blocked_and_canceled_slices_carry_an_optional_reason(status: str) -> None:
    """These carry the given reason, else the record's, else none; no attempt count."""
    record = replace(SLICES[0], status=SliceStatus(status), attempts=4)
    assert fields(events.slice_event(PARENT, record, reason="why", at=AT)) == {
        **slice_fields(0, status), "broker_order_id": None, "reason": "why"}
    kept = events.slice_event(PARENT, replace(record, reason="kept"), at=AT)
    assert fields(kept)["reason"] == "kept"
    assert fields(events.slice_event(PARENT, record, at=AT))["reason"] is None


def test_slice_event_may_be_given_its_id_and_time() -> None:
    """An explicit event id and occurrence time are used as given."""
    record = replace(SLICES[0], status=SliceStatus.CANCELED)
    at = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)
    message = events.slice_event(PARENT, record, event_id="e-1", at=at)
    body = json.loads(message.body)
    assert (message.message_id, body["event_id"], body["occurred_at"]) == (
        "e-1", "e-1", "2024-05-01T15:00:00Z")


# -- slice batches -----------------------------------------------------------------------------
def test_slice_batch_row_layout() -> None:
    """One row on the logical 'slice-batch' key: parent ids, reason, time, one list per slice."""
    canceled = [replace(s, status=SliceStatus.CANCELED) for s in SLICES]
    row = events.slice_events_batch(PARENT, canceled, "stop", at=AT)
    assert (row.exchange, row.routing_key, row.type, row.parent_order_id) == (
        "events", "slice-batch", "slice-batch", "p1")
    assert str(uuid.UUID(row.message_id or ""))
    body = json.loads(row.body)
    assert b" " not in row.body
    assert datetime.fromisoformat(body.pop("occurred_at")).tzinfo is not None
    assert body == {"parent": ["p1", "alpha", "AAPL", "buy"], "reason": "stop", "slices": [
        [0, "c0", 5, "2024-05-01T14:00:00+00:00", "canceled"],
        [1, "c1", 5, "2024-05-01T14:01:00+00:00", "canceled"]]}


def test_slice_batch_expands_to_named_events() -> None:
    """Each slice becomes its slice.canceled event, ids derived from the row and slice number."""
    row = OutboxMessage(
        exchange="events", routing_key="slice-batch", type="slice-batch", parent_order_id="p1",
        message_id="12345678-1234-5678-1234-567812345678",
        body=json.dumps({"parent": ["p1", "alpha", "AAPL", "sell"], "reason": "stop",
                         "occurred_at": "2024-05-01T15:00:00+00:00",
                         "slices": [[1, "c1", 5, "2024-05-01T14:01:00+00:00", "canceled"]]}
                        ).encode())
    [message] = events.expand(row)
    seed = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert message.message_id == str(uuid.uuid5(seed, "1"))
    assert envelope(message)[:4] == ("events", "slice.canceled.alpha", "slice.canceled", "p1")
    assert json.loads(message.body) == {
        **slice_fields(1, "canceled"), "side": "sell", "event_id": message.message_id,
        "occurred_at": "2024-05-01T15:00:00Z", "broker_order_id": None, "reason": "stop"}


# -- request and control events ----------------------------------------------------------------
def test_request_rejected_lists_the_errors() -> None:
    """request.rejected keys by strategy (or _unknown) and carries the message's ids."""
    errors = [ErrorDetail(loc="qty", msg="bad")]
    message = events.request_rejected(errors, message_id="m", correlation_id="c",
                                      strategy_id="alpha", parent_order_id="p1", at=AT)
    assert envelope(message)[:4] == ("events", "request.rejected.alpha", "request.rejected",
                                     "p1")
    assert fields(message) == {"schema_version": 2, "event_type": "request.rejected",
                               "errors": [{"loc": "qty", "msg": "bad"}], "message_id": "m",
                               "correlation_id": "c", "strategy_id": "alpha",
                               "parent_order_id": "p1"}
    anonymous = events.request_rejected(errors, message_id=None, correlation_id=None, at=AT)
    assert (anonymous.routing_key, anonymous.parent_order_id) == ("request.rejected._unknown",
                                                                  None)


def test_request_duplicate_names_the_existing_parent() -> None:
    """request.duplicate carries the parent id the request hashed to."""
    message = events.request_duplicate("p1", "alpha", message_id="m", correlation_id="c", at=AT)
    assert envelope(message)[:4] == ("events", "request.duplicate.alpha", "request.duplicate",
                                     "p1")
    assert fields(message) == {"schema_version": 2, "event_type": "request.duplicate",
                               "parent_order_id": "p1", "strategy_id": "alpha",
                               "message_id": "m", "correlation_id": "c"}


@pytest.mark.parametrize(("switch", "engaged", "event_type"), [
    ("kill_switch", True, "control.kill_switch.engaged"),
    ("kill_switch", False, "control.kill_switch.released"),
    ("breaker", True, "control.breaker.tripped"),
    ("breaker", False, "control.breaker.reset"),
])
def test_control_events_by_switch_and_direction(switch: str, engaged: bool,
                                                event_type: str) -> None:
    """Each switch and direction has its event, routed by its own type."""
    message = events.control_changed(switch, engaged, reason="r", operator="o", automatic=True,
                                     at=AT)
    assert envelope(message)[:4] == ("events", event_type, event_type, None)
    assert fields(message) == {"schema_version": 2, "event_type": event_type, "reason": "r",
                               "operator": "o", "automatic": True}


# -- replies and dead letters ------------------------------------------------------------------
def test_accepted_reply_goes_to_reply_to_without_empty_fields() -> None:
    """The reply is on the default exchange, keyed by reply_to, with the plan and no nulls."""
    message = events.reply("reply-q", "corr", events.accepted_reply(PARENT, SLICES))
    assert envelope(message) == ("", "reply-q", "reply.accepted", None, "corr", {})
    assert str(uuid.UUID(message.message_id or ""))
    assert json.loads(message.body) == {
        "outcome": "accepted", "type": "submit", "parent_order_id": "p1", "total_qty": 10,
        "total_slices": 2, "interval_seconds": 60, "slices": PLAN}


def test_rejected_reply_type_follows_its_outcome() -> None:
    """A rejected reply is typed reply.rejected."""
    message = events.reply("q", None, Reply(outcome=Outcome.REJECTED))
    assert (message.type, json.loads(message.body)) == ("reply.rejected",
                                                        {"outcome": "rejected"})


def test_dead_letter_keeps_the_body_and_says_why_in_headers() -> None:
    """The untouched body goes to the dlx keyed by its source queue; errors joined, capped."""
    errors = [ErrorDetail(loc="qty", msg="bad"), ErrorDetail(loc="$", msg="x" * 5000)]
    message = events.dead_letter(b"raw", "schema", errors, "N.requests", "m1", "c1")
    assert (message.exchange, message.routing_key, message.body, message.message_id,
            message.correlation_id) == ("dlx", "N.requests", b"raw", "m1", "c1")
    assert message.headers["x-twap-reason"] == "schema"
    assert message.headers["x-twap-source-queue"] == "N.requests"
    assert message.headers["x-twap-errors"] == ("qty: bad; $: " + "x" * 5000)[:4000]
    assert len(message.headers["x-twap-errors"]) == 4000
