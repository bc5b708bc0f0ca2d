"""A slice batch row expands into the very events the slices would have had one row each."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from twap_schemas import RequestContext, parse_request
from twap_schemas import events as ev
from twap_schemas.common import SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.core import events
from worker.core.planning import build_plan

NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def _plan() -> tuple[object, list[object]]:
    body = {"type": "submit", "strategy_id": "s-1", "symbol": "MSFT", "side": "sell",
            "qty": 1001, "duration_seconds": 600, "interval_seconds": 60}
    request = parse_request(json.dumps(body).encode(), RequestContext(now=NOW))
    assert isinstance(request, SubmitRequest)
    return build_plan(request, now=NOW)  # type: ignore[return-value]


def test_expansion_equals_one_event_per_slice() -> None:
    parent, plan = _plan()
    canceled = [replace(s, status=SliceStatus.CANCELED) for s in plan]  # type: ignore[call-overload]
    row = events.slice_events_batch(parent, canceled, "strategy stopped", at=NOW)  # type: ignore[arg-type]
    assert row.type == events.SLICE_BATCH and row.parent_order_id == parent.parent_order_id  # type: ignore[attr-defined]
    expanded = events.expand(row)
    assert len(expanded) == len(canceled) == 10
    for message, record in zip(expanded, canceled, strict=True):
        direct = events.slice_event(parent, record, reason="strategy stopped", at=NOW)  # type: ignore[arg-type]
        got, want = json.loads(message.body), json.loads(direct.body)
        for volatile in ("event_id", "occurred_at"):
            got.pop(volatile), want.pop(volatile)
        assert got == want
        assert (message.exchange, message.routing_key, message.type, message.parent_order_id) == (
            direct.exchange, direct.routing_key, direct.type, direct.parent_order_id)
        model = ev.SliceCanceled.model_validate_json(message.body)
        assert model.event_id == message.message_id


def test_expanding_twice_repeats_the_event_ids() -> None:
    """A row the relay publishes again after a crash carries the same ids: de-duplication holds."""
    parent, plan = _plan()
    canceled = [replace(s, status=SliceStatus.CANCELED) for s in plan]  # type: ignore[call-overload]
    row = events.slice_events_batch(parent, canceled, None, at=NOW)  # type: ignore[arg-type]
    first = [m.message_id for m in events.expand(row)]
    assert first == [m.message_id for m in events.expand(row)]
    assert len(set(first)) == len(first)
    other = events.slice_events_batch(parent, canceled, None, at=NOW)  # type: ignore[arg-type]
    assert not set(first) & {m.message_id for m in events.expand(other)}


def test_other_rows_expand_to_themselves() -> None:
    message = events.control_changed("breaker", True, reason="r", operator=None, automatic=True,
                                     at=NOW)
    assert events.expand(message) == [message]


def test_accepted_plan_from_plain_fields_is_what_the_models_give() -> None:
    """parent.accepted's slices go in as plain fields: the JSON is that of the models."""
    parent, plan = _plan()
    message = events.parent_accepted(parent, plan, at=NOW)  # type: ignore[arg-type]
    validated = ev.ParentAccepted.model_validate_json(message.body)
    assert json.loads(validated.model_dump_json()) == json.loads(message.body)
    assert [s.client_order_id for s in validated.slices] == [
        s.client_order_id for s in plan]  # type: ignore[attr-defined]
