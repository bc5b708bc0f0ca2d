"""classify(): one inbound message to a planned parent, a cancel, or an Invalid with every error."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from twap_schemas import CancelRequest, Distribution, Limits, OrderType, RequestContext, Side
from twap_schemas.errors import ErrorDetail
from worker.core.intake import CancelOrder, Inbound, Invalid, PlannedSubmit, classify

NOW = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
CTX = RequestContext(limits=Limits(max_qty=1_000_000, max_slices=50, max_duration_seconds=7200),
                     now=NOW, misfire_grace=timedelta(seconds=60))


def submit(**overrides: Any) -> bytes:
    value: dict[str, Any] = {"type": "submit", "strategy_id": "alpha_1", "symbol": "aapl",
                             "side": "buy", "qty": 103, "duration_seconds": 300}
    value.update(overrides)
    return json.dumps({k: v for k, v in value.items() if v is not None}).encode()


def planned(body: bytes, *, now: datetime = NOW, **inbound: Any) -> PlannedSubmit:
    item = classify(Inbound(body, **inbound), CTX, now)
    assert isinstance(item, PlannedSubmit), item
    return item


def test_inbound_carries_nothing_but_the_body_by_default() -> None:
    """message_id, correlation_id, reply_to and user_id default to None."""
    inbound = Inbound(b"{}")
    assert (inbound.message_id, inbound.correlation_id, inbound.reply_to,
            inbound.user_id) == (None, None, None, None)


def test_front_loaded_submit_is_planned_from_now() -> None:
    """103 over 300 s at 60 s: five slices 21,21,21,20,20, one a minute from now, ids pinned."""
    item = planned(submit(), message_id="m-1", user_id="svc-alpha")
    parent, slices = item.parent, item.slices
    assert item.inbound.message_id == "m-1"
    assert parent.parent_order_id == "db7715e495d7b7d3c0fbbb1f"
    assert (parent.strategy_id, parent.symbol, parent.side, parent.qty) == (
        "alpha_1", "AAPL", Side.BUY, 103)
    assert (parent.order_type, parent.limit_price, parent.stop_price) == (
        OrderType.MARKET, None, None)
    assert (parent.duration_seconds, parent.interval_seconds, parent.total_slices) == (300, 60, 5)
    assert (parent.max_slice_qty, parent.distribution) == (None, Distribution.FRONT_LOADED)
    assert (parent.start_at, parent.trade_date, parent.created_at) == (NOW, date(2024, 5, 1), NOW)
    assert (parent.request_id, parent.submitted_by) == (None, "svc-alpha")
    assert [s.qty for s in slices] == [21, 21, 21, 20, 20]
    assert [s.slice_num for s in slices] == [0, 1, 2, 3, 4]
    assert [s.scheduled_time for s in slices] == [
        datetime(2024, 5, 1, 14, m, tzinfo=UTC) for m in range(5)]
    assert {s.parent_order_id for s in slices} == {"db7715e495d7b7d3c0fbbb1f"}
    assert [s.client_order_id for s in slices] == [
        "bb0f6ac8e150614dd4a56ff4", "073b9d2059b590e6f45b0990", "33e27649e323c65b10b84f62",
        "8ecd3730adc3a635be044b77", "2804858139f74730aa960a0d"]


def test_even_random_spreads_the_remainder_by_the_parent_seed() -> None:
    """even_random puts the 3 extra shares on seeded slices (0, 3 and 4 here), not the first 3."""
    item = planned(submit(distribution="even_random"))
    assert item.parent.parent_order_id == "c858841f2bc45090163980e6"
    assert item.parent.distribution is Distribution.EVEN_RANDOM
    assert [s.qty for s in item.slices] == [21, 20, 20, 21, 21]


def test_start_at_sets_the_start_and_the_trade_date_in_utc() -> None:
    """23:30-02:00 on May 1st starts at 01:30Z and trades on May 2nd."""
    item = planned(submit(start_at="2024-05-01T23:30:00-02:00"))
    start = datetime(2024, 5, 2, 1, 30, tzinfo=UTC)
    assert item.parent.start_at == start and item.parent.start_at.utcoffset() == timedelta(0)
    assert item.parent.trade_date == date(2024, 5, 2)
    assert item.slices[0].scheduled_time == start
    assert item.slices[4].scheduled_time == start + timedelta(minutes=4)


def test_now_in_another_offset_is_stored_in_utc() -> None:
    """Without start_at the start is now, converted to UTC."""
    local_now = NOW.astimezone(timezone(timedelta(hours=-5)))
    item = planned(submit(), now=local_now)
    assert item.parent.start_at.utcoffset() == timedelta(0)
    assert item.parent.start_at == NOW


def test_an_explicit_trade_date_is_kept() -> None:
    """trade_date given in the request wins over the start's date."""
    item = planned(submit(trade_date="2024-04-30"))
    assert item.parent.trade_date == date(2024, 4, 30)


def test_duration_minutes_and_max_slice_qty_shape_the_plan() -> None:
    """5 minutes with a cap of 10 on 103 shares: 11 slices 30 s apart (300 // 10)."""
    item = planned(submit(duration_seconds=None, duration_minutes=5, max_slice_qty=10,
                          request_id="r-9"))
    assert (item.parent.duration_seconds, item.parent.interval_seconds) == (300, 30)
    assert (item.parent.total_slices, item.parent.max_slice_qty) == (11, 10)
    assert item.parent.request_id == "r-9"
    assert [s.qty for s in item.slices] == [10, 10, 10, 10, 9, 9, 9, 9, 9, 9, 9]


def test_limit_order_fields_reach_the_parent() -> None:
    """Order type, prices and time in force are carried over."""
    item = planned(submit(order_type="stop_limit", limit_price="150.5", stop_price="149",
                          time_in_force="gtc"))
    parent = item.parent
    assert (parent.order_type.value, str(parent.limit_price), str(parent.stop_price),
            parent.time_in_force.value) == ("stop_limit", "150.5", "149", "gtc")


def test_plan_beyond_the_configured_slice_maximum_is_invalid() -> None:
    """85 slices against a maximum of 50 is an Invalid 'plan' naming interval_seconds."""
    item = classify(Inbound(submit(duration_seconds=5100, qty=1000)), CTX, NOW)
    assert isinstance(item, Invalid)
    assert (item.kind, item.strategy_id) == ("plan", "alpha_1")
    assert item.errors == [ErrorDetail(
        loc="interval_seconds", msg="the plan would have 85 slices; the configured maximum is 50")]


def test_qty_below_the_slice_count_is_invalid() -> None:
    """3 shares over 5 slices: an Invalid 'plan' on qty."""
    item = classify(Inbound(submit(qty=3)), CTX, NOW)
    assert isinstance(item, Invalid)
    assert item.kind == "plan"
    assert [e.loc for e in item.errors] == ["qty"]


def test_cancel_becomes_a_cancel_order() -> None:
    """A valid cancel is passed through with its inbound."""
    inbound = Inbound(b'{"type": "cancel", "parent_order_id": "p-1"}', correlation_id="c-1")
    item = classify(inbound, CTX, NOW)
    assert isinstance(item, CancelOrder)
    assert item.inbound is inbound
    assert item.request == CancelRequest(type="cancel", parent_order_id="p-1")


def test_schema_error_keeps_its_kind_errors_and_strategy() -> None:
    """A request with a bad side is Invalid 'schema' and still routes to its strategy."""
    item = classify(Inbound(submit(side="hold")), CTX, NOW)
    assert isinstance(item, Invalid)
    assert (item.kind, item.strategy_id) == ("schema", "alpha_1")
    assert [e.loc for e in item.errors] == ["side"]


@pytest.mark.parametrize(
    ("body", "kind", "strategy"),
    [
        (b"not json", "not_json", None),
        (b'{"a": "\xff"}', "not_json", None),
        (b"[" * 50_000, "not_json", None),
        (b'["alpha_1"]', "not_object", None),
        (b'{"type": "modify", "strategy_id": "alpha_1"}', "unknown_type", "alpha_1"),
        (b'{"type": "modify", "strategy_id": 7}', "unknown_type", None),
        (b'{"type": "modify", "strategy_id": "bad id!"}', "unknown_type", None),
        (b'{"type": "modify", "strategy_id": ""}', "unknown_type", None),
        (b'{"type": "modify", "strategy_id": "' + b"s" * 64 + b'"}', "unknown_type", "s" * 64),
        (b'{"type": "modify", "strategy_id": "' + b"s" * 65 + b'"}', "unknown_type", None),
        (b'{"type": "modify", "strategy_id": "a-B_9"}', "unknown_type", "a-B_9"),
    ],
)
def test_strategy_hint_only_from_a_valid_strategy_id(body: bytes, kind: str,
                                                     strategy: str | None) -> None:
    """The routing hint is the strategy_id when it matches the contract's pattern, else None."""
    item = classify(Inbound(body), CTX, NOW)
    assert isinstance(item, Invalid)
    assert (item.kind, item.strategy_id) == (kind, strategy)
    assert item.errors and item.errors[0].msg


# -- AMQP properties the store keeps ------------------------------------------------------------
def test_message_id_and_user_id_at_their_column_limits_are_kept_as_they_came() -> None:
    """message_id of 64 and user_id of 128 characters pass; an Invalid keeps that very inbound."""
    inbound = Inbound(submit(), message_id="m" * 64, user_id="u" * 128)
    assert planned(inbound.body, message_id="m" * 64, user_id="u" * 128).inbound == inbound
    bad = Inbound(submit(side="hold"), message_id="m" * 64, user_id="u" * 128)
    item = classify(bad, CTX, NOW)
    assert isinstance(item, Invalid) and item.inbound is bad


@pytest.mark.parametrize(
    ("props", "errors", "cut"),
    [
        ({"message_id": "m" * 65}, [("properties.message_id",
                                     "AMQP message_id is 65 characters; at most 64")],
         {"message_id": "m" * 64}),
        ({"user_id": "u" * 129}, [("properties.user_id",
                                   "AMQP user_id is 129 characters; at most 128")],
         {"user_id": "u" * 128}),
        ({"message_id": "m" * 100, "user_id": "u" * 200},
         [("properties.message_id", "AMQP message_id is 100 characters; at most 64"),
          ("properties.user_id", "AMQP user_id is 200 characters; at most 128")],
         {"message_id": "m" * 64, "user_id": "u" * 128}),
    ],
)
def test_a_property_longer_than_its_column_refuses_a_valid_submit(
    props: dict[str, str], errors: list[tuple[str, str]], cut: dict[str, str],
) -> None:
    """Over 64 / 128 characters: Invalid 'schema' naming each, the inbound cut to fit the store."""
    item = classify(Inbound(submit(), correlation_id="c-1", **props), CTX, NOW)
    assert isinstance(item, Invalid)
    assert (item.kind, item.strategy_id) == ("schema", "alpha_1")
    assert [(e.loc, e.msg) for e in item.errors] == errors
    assert item.inbound == Inbound(submit(), correlation_id="c-1",
                                   **{"message_id": None, "user_id": None, **cut})


def test_a_long_property_is_listed_before_the_body_errors_and_makes_it_schema() -> None:
    """A plan error and a 65-character message_id: reason schema, the property's error first."""
    item = classify(Inbound(submit(qty=1_000_001), message_id="m" * 65), CTX, NOW)
    assert isinstance(item, Invalid)
    assert (item.kind, item.strategy_id) == ("schema", "alpha_1")
    assert [(e.loc, e.msg) for e in item.errors] == [
        ("properties.message_id", "AMQP message_id is 65 characters; at most 64"),
        ("qty", "must be at most 1000000 (configured maximum)")]
    assert item.inbound.message_id == "m" * 64


def test_a_long_property_on_a_cancel_has_no_strategy() -> None:
    """A cancel names no strategy: its property error routes nowhere in particular."""
    body = b'{"type": "cancel", "parent_order_id": "p-1"}'
    item = classify(Inbound(body, user_id="u" * 129), CTX, NOW)
    assert isinstance(item, Invalid)
    assert (item.kind, item.strategy_id, [e.loc for e in item.errors]) == (
        "schema", None, ["properties.user_id"])


# -- the default trade date ---------------------------------------------------------------------
YESTERDAY = datetime(2024, 4, 30, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "timestamp", "first_seen", "trade_date", "dated_at"),
    [
        ({}, None, None, date(2024, 5, 1), NOW),
        ({}, None, YESTERDAY, date(2024, 4, 30), YESTERDAY),
        ({}, YESTERDAY, None, date(2024, 4, 30), None),
        ({}, YESTERDAY, NOW - timedelta(hours=1), date(2024, 4, 30), None),
        ({"trade_date": "2024-04-29"}, None, YESTERDAY, date(2024, 4, 29), None),
        ({"start_at": "2024-05-01T14:00:00Z"}, None, YESTERDAY, date(2024, 5, 1), None),
    ],
)
def test_default_trade_date_is_when_the_message_was_received(
    fields: dict[str, str], timestamp: datetime | None, first_seen: datetime | None,
    trade_date: date, dated_at: datetime | None,
) -> None:
    """trade_date, start_at, AMQP timestamp, first seen, now; dated_at only for the last two."""
    item = classify(Inbound(submit(**fields), timestamp=timestamp), CTX, NOW,
                    first_seen=first_seen)
    assert isinstance(item, PlannedSubmit)
    assert (item.parent.trade_date, item.dated_at) == (trade_date, dated_at)


# -- whatever raises is this message's rejection ------------------------------------------------
def test_a_planner_that_raises_gives_an_invalid_plan_and_a_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A raise while planning: Invalid 'plan' on '$' quoting it (300 chars max), and a log."""
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("x" * 400)

    monkeypatch.setattr("worker.core.intake.build_plan", explode)
    with caplog.at_level("ERROR", logger="worker.core.intake"):
        item = classify(Inbound(submit(), message_id="m-7"), CTX, NOW)
    assert isinstance(item, Invalid)
    assert (item.kind, item.strategy_id) == ("plan", "alpha_1")
    expected = "could not be planned: RuntimeError('" + "x" * 264
    assert len(expected) == 300
    assert item.errors == [ErrorDetail(loc="$", msg=expected)]
    assert item.inbound == Inbound(submit(), message_id="m-7")
    [record] = caplog.records
    assert record.getMessage() == "intake.classify_raised"
    assert record.__dict__["message_id"] == "m-7"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
