"""Request validation: every rule of the contract, each error naming its field and reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from twap_schemas import InvalidMessage, Limits, RequestContext, SubmitRequest, parse_request

NOW = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
CTX = RequestContext(limits=Limits(max_qty=1_000_000, max_slices=1000, max_duration_seconds=7200),
                     now=NOW, misfire_grace=timedelta(seconds=60))


def body(**overrides: Any) -> bytes:
    value: dict[str, Any] = {"type": "submit", "strategy_id": "alpha_1", "symbol": "aapl",
                             "side": "buy", "qty": 100, "duration_seconds": 600}
    value.update(overrides)
    return json.dumps({k: v for k, v in value.items() if v is not None}).encode()


def errors(raw: bytes) -> dict[str, str]:
    with pytest.raises(InvalidMessage) as exc:
        parse_request(raw, CTX)
    return {e.loc: e.msg for e in exc.value.errors}


def test_minimal_submit_gets_the_contract_defaults() -> None:
    """interval 60, market, day, front_loaded; symbol stored upper-cased."""
    req = parse_request(body(), CTX)
    assert isinstance(req, SubmitRequest)
    assert (req.symbol, req.interval_seconds, req.order_type, req.time_in_force,
            req.distribution) == ("AAPL", 60, "market", "day", "front_loaded")


def test_execution_fields_default_to_the_contract() -> None:
    """slice_end cancel, catch_up true, ratio 2, keep_working_after_end false; a ratio is an
    exact decimal from a number or a string."""
    req = parse_request(body(), CTX)
    assert isinstance(req, SubmitRequest)
    assert (req.slice_end, req.catch_up, req.max_catch_up_ratio, req.keep_working_after_end) == (
        "cancel", True, Decimal(2), False)
    req = parse_request(body(slice_end="keep", catch_up=False, max_catch_up_ratio="1.5",
                             keep_working_after_end=True), CTX)
    assert isinstance(req, SubmitRequest)
    assert (req.slice_end, req.catch_up, req.max_catch_up_ratio, req.keep_working_after_end) == (
        "keep", False, Decimal("1.5"), True)
    req = parse_request(body(max_catch_up_ratio=10), CTX)
    assert isinstance(req, SubmitRequest) and req.max_catch_up_ratio == Decimal(10)


@pytest.mark.parametrize(
    ("raw_ratio", "fragment"),
    [
        ("1.0000000000000000000000000000000000000000001", "no more than 8 decimal places"),
        ('"1.000000001"', "at most 8 decimals"),
        ('"12"', "from 1 to 10"),
        ('"01.5"', "from 1 to 10"),
        ('"10.5"', "from 1 to 10"),
        ("10.5", "less than or equal to 10"),
        ("0.5", "greater than or equal to 1"),
        ("true", "decimal"),
    ],
)
def test_a_ratio_out_of_its_shape_is_refused_by_name(raw_ratio: str, fragment: str) -> None:
    """max_catch_up_ratio: 1 to 10 with at most 8 decimals, as a number or a plain string
    (a longer number once passed here and only a PostgreSQL column refused it)."""
    raw = body().replace(b"}", b', "max_catch_up_ratio": ' + raw_ratio.encode() + b"}")
    found = errors(raw)
    assert list(found) == ["max_catch_up_ratio"], found
    assert fragment in found["max_catch_up_ratio"], found


def test_a_ratio_of_eight_decimals_is_kept_exactly() -> None:
    req = parse_request(body(max_catch_up_ratio="9.12345678"), CTX)
    assert isinstance(req, SubmitRequest) and req.max_catch_up_ratio == Decimal("9.12345678")


def test_unknown_field_is_an_error_not_ignored() -> None:
    """A typo such as limit_prce is reported, never silently dropped."""
    assert "limit_prce" in errors(body(limit_prce=1))


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"strategy_id": "bad id!"}, "strategy_id", "1-64"),
        ({"strategy_id": "x" * 65}, "strategy_id", "1-64"),
        ({"symbol": "AAPL$"}, "symbol", "letters"),
        ({"symbol": "A" * 17}, "symbol", "letters"),
        ({"side": "hold"}, "side", "'buy' or 'sell'"),
        ({"qty": 0}, "qty", "greater than or equal to 1"),
        ({"qty": 1.5}, "qty", "integer"),
        ({"qty": "10"}, "qty", "integer"),
        ({"qty": True}, "qty", "integer"),
        ({"qty": 1_000_001}, "qty", "configured maximum"),
        ({"duration_seconds": 0}, "duration_seconds", "greater than or equal to 1"),
        ({"duration_seconds": 86_401}, "duration_seconds", "less than or equal to 86400"),
        ({"duration_seconds": 7201}, "duration_seconds", "configured maximum"),
        ({"duration_seconds": None}, "duration_seconds", "give duration_seconds or"),
        ({"duration_minutes": 5}, "duration_seconds", "not both"),
        ({"interval_seconds": 0}, "interval_seconds", "greater than or equal to 1"),
        ({"order_type": "iceberg"}, "order_type", "market"),
        ({"order_type": "limit"}, "limit_price", "required when order_type is limit"),
        ({"order_type": "stop"}, "stop_price", "required when order_type is stop"),
        ({"limit_price": 10}, "limit_price", "not allowed when order_type is market"),
        ({"order_type": "limit", "limit_price": -1}, "limit_price", "greater than 0"),
        ({"order_type": "limit", "limit_price": "abc"}, "limit_price", "decimal"),
        ({"time_in_force": "week"}, "time_in_force", "day"),
        ({"max_slice_qty": 0}, "max_slice_qty", "greater than or equal to 1"),
        ({"distribution": "random"}, "distribution", "front_loaded"),
        ({"start_at": "2024-05-01T14:00:00"}, "start_at", "RFC 3339"),
        ({"start_at": "yesterday"}, "start_at", "RFC 3339"),
        ({"start_at": "2024-05-01T13:58:00Z"}, "start_at", "misfire grace"),
        ({"start_at": "2024-05-09T14:00:00Z"}, "start_at", "7 days"),
        ({"trade_date": "2024/05/01"}, "trade_date", "YYYY-MM-DD"),
        ({"trade_date": 20240501}, "trade_date", "YYYY-MM-DD"),
        ({"request_id": "r" * 65}, "request_id", "at most 64"),
        ({"slice_end": "stop"}, "slice_end", "'cancel' or 'keep'"),
        ({"catch_up": "yes"}, "catch_up", "boolean"),
        ({"catch_up": 1}, "catch_up", "boolean"),
        ({"max_catch_up_ratio": "0.5"}, "max_catch_up_ratio", "from 1 to 10"),
        ({"max_catch_up_ratio": 11}, "max_catch_up_ratio", "less than or equal to 10"),
        ({"max_catch_up_ratio": "two"}, "max_catch_up_ratio", "decimal"),
        ({"keep_working_after_end": "no"}, "keep_working_after_end", "boolean"),
    ],
)
def test_each_rule_names_its_field(overrides: dict[str, Any], field: str, fragment: str) -> None:
    """Every rule of the contract gives an error on the right field with a readable reason."""
    found = errors(body(**overrides))
    assert field in found, found
    assert fragment in found[field], found[field]


def test_every_error_is_reported_at_once() -> None:
    """Several problems in one request are all listed, not just the first."""
    found = errors(body(side="hold", qty=0, symbol="$", extra=1))
    assert {"side", "qty", "symbol", "extra"} <= set(found)


def test_prices_stay_exact() -> None:
    """JSON numbers and strings become exact Decimals (never floats)."""
    req = parse_request(body(order_type="stop_limit", limit_price="150.01",
                             stop_price=149.995), CTX)
    assert isinstance(req, SubmitRequest)
    assert req.limit_price == Decimal("150.01") and req.stop_price == Decimal("149.995")


def test_duration_minutes_alone_is_accepted() -> None:
    """duration_minutes is the other way to give the duration."""
    req = parse_request(body(duration_seconds=None, duration_minutes=10), CTX)
    assert isinstance(req, SubmitRequest) and req.duration == 600


def test_start_at_with_offset_is_converted_to_utc() -> None:
    """+02:00 becomes the same instant in UTC."""
    req = parse_request(body(start_at="2024-05-01T16:30:00+02:00"), CTX)
    assert isinstance(req, SubmitRequest)
    assert req.start_at == datetime(2024, 5, 1, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
        (b'{"type": "modify"}', "unknown_type"),
        (b'{"qty": 1}', "unknown_type"),
        (b'{"type":"submit","qty":NaN}', "not_json"),
        (b" " * (64 * 1024 + 1), "too_large"),
    ],
)
def test_messages_that_can_never_succeed(raw: bytes, kind: str) -> None:
    """Garbage is classified, never a crash."""
    with pytest.raises(InvalidMessage) as exc:
        parse_request(raw, CTX)
    assert exc.value.kind == kind
    assert exc.value.errors and exc.value.errors[0].msg


def test_cancel_rules() -> None:
    """cancel needs parent_order_id; reason at most 256; unknown fields refused."""
    found = errors(b'{"type": "cancel", "reason": "' + b"r" * 257 + b'", "x": 1}')
    assert {"parent_order_id", "reason", "x"} <= set(found)
