"""Request validation at its edges: each limit on both sides, the defaults, the parsed values."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from twap_schemas import (
    CancelRequest,
    InvalidMessage,
    Limits,
    RequestContext,
    SubmitRequest,
    parse_request,
)
from twap_schemas.json_schema import DECIMAL
from twap_schemas.numbers import Unrepresentable

NOW = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
CTX = RequestContext(limits=Limits(max_qty=1_000_000, max_slices=1000, max_duration_seconds=7200),
                     now=NOW, misfire_grace=timedelta(seconds=60))
OMIT = object()


def body(**overrides: Any) -> bytes:
    value: dict[str, Any] = {"type": "submit", "strategy_id": "alpha_1", "symbol": "aapl",
                             "side": "buy", "qty": 100, "duration_seconds": 600}
    value.update(overrides)
    return json.dumps({k: v for k, v in value.items() if v is not OMIT}).encode()


def ok(raw: bytes, context: Any = CTX) -> SubmitRequest:
    req = parse_request(raw, context)
    assert isinstance(req, SubmitRequest)
    return req


def errors(raw: bytes, context: Any = CTX, kind: str = "schema") -> dict[str, str]:
    with pytest.raises(InvalidMessage) as exc:
        parse_request(raw, context)
    assert exc.value.kind == kind
    return {e.loc: e.msg for e in exc.value.errors}


def plan_errors(raw: bytes, context: Any = CTX) -> dict[str, str]:
    """The errors of a request the published schema accepts but the worker's rules refuse."""
    return errors(raw, context, kind="plan")


# -- message size ------------------------------------------------------------------------------
def padded(size: int) -> bytes:
    """A valid submit padded with trailing spaces to exactly `size` bytes."""
    raw = body()
    return raw + b" " * (size - len(raw))


def test_a_message_of_exactly_64_kib_is_read() -> None:
    """65536 bytes is within the limit."""
    assert ok(padded(65_536)).qty == 100


def test_one_byte_over_64_kib_is_too_large() -> None:
    """65537 bytes is refused before parsing, saying both sizes."""
    with pytest.raises(InvalidMessage) as exc:
        parse_request(padded(65_537), CTX)
    assert exc.value.kind == "too_large"
    assert [(e.loc, e.msg) for e in exc.value.errors] == [
        ("$", "message is 65537 bytes; the limit is 65536")]


# -- quantities and durations ------------------------------------------------------------------
def test_qty_at_the_configured_maximum_is_accepted() -> None:
    """qty == max_qty passes; one more is refused with reason plan, naming the maximum."""
    assert ok(body(qty=1_000_000)).qty == 1_000_000
    assert plan_errors(body(qty=1_000_001)) == {
        "qty": "must be at most 1000000 (configured maximum)"}


def test_a_schema_error_beside_a_worker_rule_makes_the_reason_schema() -> None:
    """Over the configured maximum and a bad side: reason schema, both errors listed."""
    assert errors(body(qty=1_000_001, side="hold")) == {
        "side": "Input should be 'buy' or 'sell'",
        "qty": "must be at most 1000000 (configured maximum)"}


def test_two_worker_rules_broken_are_still_reason_plan() -> None:
    """Over the configured maximum and 31 days ahead: reason plan, both errors listed."""
    assert plan_errors(body(qty=1_000_001, start_at="2024-06-01T00:00:00Z")) == {
        "qty": "must be at most 1000000 (configured maximum)",
        "start_at": "is more than 7 days ahead"}


def test_integers_end_at_two_to_the_53_minus_one() -> None:
    """Without a context qty 2^53-1 passes and 2^53 is refused by the contract's range."""
    assert ok(body(qty=9_007_199_254_740_991), None).qty == 9_007_199_254_740_991
    assert errors(body(qty=9_007_199_254_740_992), None) == {
        "qty": "Input should be less than or equal to 9007199254740991"}


def with_raw(raw_field: str, **overrides: Any) -> bytes:
    """A submit with one more field as raw JSON text (100.0, 1e2, 1e400 as written)."""
    return body(**overrides)[:-1] + b", " + raw_field.encode() + b"}"


@pytest.mark.parametrize("text", ["100", "100.0", "1e2", "1.00E+2"])
def test_an_integral_number_is_an_integer(text: str) -> None:
    """100, 100.0, 1e2 and 1.00E+2 are all the int 100."""
    req = ok(with_raw(f'"max_slice_qty": {text}'))
    assert req.max_slice_qty == 100 and type(req.max_slice_qty) is int


INTEGER_FIELDS = {  # each integer field, and what to leave out so that it is given once
    "qty": {"qty": OMIT},
    "max_slice_qty": {},
    "duration_seconds": {"duration_seconds": OMIT},
    "duration_minutes": {"duration_seconds": OMIT},
    "interval_seconds": {},
}


@pytest.mark.parametrize("field", INTEGER_FIELDS)
@pytest.mark.parametrize(("text", "message"), [
    ("60", None),
    ("60.0", None),
    ("6e1", None),
    ("60.5", "Input should be a valid integer"),
    ('"60"', "Input should be a valid integer"),
    ("true", "Input should be a valid integer"),
])
def test_every_integer_field_reads_integral_numbers_only(
    field: str, text: str, message: str | None,
) -> None:
    """60, 60.0 and 6e1 are the int 60 in every integer field; 60.5, "60" and true are not."""
    raw = with_raw(f'"{field}": {text}', **INTEGER_FIELDS[field])
    if message is None:
        value = getattr(ok(raw, None), field)
        assert value == 60 and type(value) is int
    else:
        assert errors(raw, None) == {field: message}


@pytest.mark.parametrize(("text", "message"), [
    ("100.5", "Input should be a valid integer"),
    ('"100"', "Input should be a valid integer"),
    ("true", "Input should be a valid integer"),
    ("9007199254740991.0", None),
    ("9007199254740992.0", "Input should be less than or equal to 9007199254740991"),
    ("1e400", "Input should be less than or equal to 9007199254740991"),
    ("-1e400", "Input should be greater than or equal to 1"),
    ("1e999999999999999999", "Input should be less than or equal to 9007199254740991"),
    ("9" * 5000, "number out of range"),
])
def test_integer_fields_at_their_range(text: str, message: str | None) -> None:
    """No fraction, string or bool; integral numbers end at 2^53-1; a huge one names its field."""
    raw = with_raw(f'"max_slice_qty": {text}')
    if message is None:
        assert ok(raw, None).max_slice_qty == 9_007_199_254_740_991
    else:
        assert errors(raw, None) == {"max_slice_qty": message}


def test_qty_of_one_is_the_smallest() -> None:
    """qty 1 is accepted (ge=1)."""
    assert ok(body(qty=1, duration_seconds=60)).qty == 1


def python_errors(**overrides: Any) -> list[tuple[str, Any]]:
    """A Python caller's validation of a submit: each error's type and the input it names."""
    with pytest.raises(ValidationError) as exc:
        SubmitRequest.model_validate({**json.loads(body()), **overrides}, context=CTX)
    return [(e["type"], e["input"]) for e in exc.value.errors()]


@pytest.mark.parametrize(("value", "qty"), [
    (100.0, 100), (1.0, 1), (9_007_199_254_740_991.0, 9_007_199_254_740_991),
    (Decimal("100.0"), 100),
])
def test_a_python_caller_may_pass_an_integral_float_or_decimal(value: Any, qty: int) -> None:
    """100.0, 1.0 and 2^53-1 as floats (and Decimal 100.0) are those ints."""
    req = SubmitRequest.model_validate({**json.loads(body()), "qty": value})
    assert req.qty == qty and type(req.qty) is int


@pytest.mark.parametrize(("value", "found"), [
    (100.5, [("int_type", 100.5)]),
    (9_007_199_254_740_992.0, [("int_type", 9_007_199_254_740_992.0)]),
    (float("inf"), [("int_type", float("inf"))]),
    (Decimal("100.5"), [("int_type", Decimal("100.5"))]),
    (-1.0, [("greater_than_equal", -1)]),
    (Decimal("1e400"), [("less_than_equal", 9_007_199_254_740_992)]),
    (Decimal("-1e400"), [("greater_than_equal", -9_007_199_254_740_992)]),
])
def test_a_python_callers_refused_number_is_quoted_as_checked(
    value: Any, found: list[tuple[str, Any]],
) -> None:
    """A fraction or a float past 2^53-1 is quoted as given; a huge integral is cut to +-2^53."""
    assert python_errors(qty=value) == found


def test_worker_rules_carry_their_own_error_type() -> None:
    """A Python caller sees a broken worker rule as error type worker_rule."""
    assert python_errors(qty=1_000_001) == [("worker_rule", 1_000_001)]


def test_duration_seconds_at_the_configured_maximum_is_accepted() -> None:
    """7200 s against a 7200 s maximum passes; 1 s is the smallest."""
    assert ok(body(duration_seconds=7200)).duration == 7200
    assert ok(body(duration_seconds=1)).duration == 1


def test_duration_minutes_over_the_maximum_is_measured_in_seconds() -> None:
    """121 minutes is 7260 s, over a 7200 s maximum; 120 minutes is exactly the maximum."""
    assert plan_errors(body(duration_seconds=OMIT, duration_minutes=121)) == {
        "duration_seconds": "duration 7260 s exceeds the configured maximum of 7200 s"}
    assert plan_errors(body(duration_seconds=7201)) == {
        "duration_seconds": "duration 7201 s exceeds the configured maximum of 7200 s"}
    req = ok(body(duration_seconds=OMIT, duration_minutes=120))
    assert (req.duration_minutes, req.duration_seconds, req.duration) == (120, None, 7200)


def test_contract_duration_ranges_without_a_context() -> None:
    """Without a context: 86400 s and 1440 min pass, one more of either does not."""
    assert ok(body(duration_seconds=86_400), None).duration == 86_400
    assert ok(body(duration_seconds=OMIT, duration_minutes=1440), None).duration == 86_400
    assert ok(body(duration_seconds=OMIT, duration_minutes=1), None).duration == 60
    assert errors(body(duration_seconds=OMIT, duration_minutes=1441), None) == {
        "duration_minutes": "Input should be less than or equal to 1440"}
    assert errors(body(duration_seconds=OMIT, duration_minutes=0), None) == {
        "duration_minutes": "Input should be greater than or equal to 1"}


def test_an_invalid_duration_minutes_is_reported_once() -> None:
    """A bad duration_minutes is not also reported as a missing duration."""
    assert set(errors(body(duration_seconds=OMIT, duration_minutes="5"))) == {"duration_minutes"}


def test_both_durations_missing_is_one_error() -> None:
    """Neither field: one error on duration_seconds asking for either."""
    assert errors(body(duration_seconds=OMIT)) == {
        "duration_seconds": "give duration_seconds or duration_minutes"}


def test_interval_defaults_to_60_and_may_be_1() -> None:
    """interval_seconds is 60 when absent; 1 s is allowed."""
    assert ok(body()).interval_seconds == 60
    assert ok(body(interval_seconds=1)).interval_seconds == 1


def test_interval_is_at_most_one_day() -> None:
    """interval_seconds 86,400 passes; 86,401 is refused by the contract's range."""
    assert ok(body(interval_seconds=86_400)).interval_seconds == 86_400
    assert errors(body(interval_seconds=86_401)) == {
        "interval_seconds": "Input should be less than or equal to 86400"}


def test_max_slice_qty_of_one_is_allowed() -> None:
    """max_slice_qty has a floor of 1."""
    assert ok(body(max_slice_qty=1)).max_slice_qty == 1


# -- the context -------------------------------------------------------------------------------
def test_context_may_be_nested_under_request() -> None:
    """A dict context with the RequestContext under 'request' applies its limits."""
    assert set(plan_errors(body(qty=1_000_001), {"request": CTX})) == {"qty"}
    assert ok(body(qty=1_000_001), {"other": CTX}).qty == 1_000_001


def test_without_a_clock_start_at_is_not_windowed() -> None:
    """A context without `now` checks no past or future window."""
    no_clock = RequestContext(limits=CTX.limits)
    assert ok(body(start_at="2000-01-01T00:00:00Z"), no_clock).start_at == datetime(
        2000, 1, 1, tzinfo=UTC)


# -- start_at and trade_date -------------------------------------------------------------------
def test_start_at_is_stored_in_utc_not_in_its_own_offset() -> None:
    """16:30+02:00 is stored as 14:30 with a zero offset, so it prints as UTC."""
    req = ok(body(start_at="2024-05-01T16:30:00+02:00"))
    assert req.start_at is not None
    assert req.start_at.utcoffset() == timedelta(0)
    assert req.start_at.isoformat() == "2024-05-01T14:30:00+00:00"


@pytest.mark.parametrize(("text", "micro"), [
    ("2024-05-01T14:30:00Z", 0),
    ("2024-05-01t14:30:00z", 0),
    ("2024-05-01T14:30:00.250Z", 250_000),
    ("2024-05-01T14:30:00.123456789Z", 123_456),
    ("2024-05-01T16:30:00+02:00", 0),
    ("2024-05-01T10:00:00-04:30", 0),
    ("2024-05-01T14:30:00+00:00", 0),
])
def test_rfc3339_spellings_are_accepted(text: str, micro: int) -> None:
    """T or t, Z or z or a +/-HH:MM offset, up to 9 fraction digits (kept to the microsecond)."""
    assert ok(body(start_at=text)).start_at == datetime(2024, 5, 1, 14, 30, 0, micro, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "2024-05-01 14:30:00Z",  # a space instead of T
    "2024-05-01T14:30:00",  # no offset
    "2024-05-01T14:30:00+0200",  # offset without its colon
    "2024-05-01T14:30:00+02",  # offset without minutes
    "2024-05-01T14:30Z",  # no seconds
    "2024-05-01T14:30:00.1234567890Z",  # a tenth fraction digit
    "2024-05-01T24:00:00Z",  # hour 24
    "2024-05-01T14:30:00Z\n",  # a trailing newline
    "20240501T143000Z",  # the basic (no dashes) form
])
def test_rfc3339_lookalikes_are_refused(text: str) -> None:
    """start_at needs the T, seconds, and Z or a +/-HH:MM offset: other ISO 8601 forms fail."""
    assert errors(body(start_at=text)) == {
        "start_at": "must be an RFC 3339 timestamp with an offset, e.g. 2024-05-01T14:30:00Z"}


def test_a_date_that_does_not_exist_is_named() -> None:
    """30 February has the right shape but is no date: the error quotes it."""
    assert errors(body(start_at="2024-02-30T14:30:00Z")) == {
        "start_at": "is not a real date and time: 2024-02-30T14:30:00Z"}


def test_a_start_before_the_first_utc_instant_is_outside_the_window() -> None:
    """Year 1, midnight at +01:00 has no UTC instant: refused with reason plan, not a crash."""
    assert plan_errors(body(start_at="0001-01-01T00:00:00+01:00")) == {
        "start_at": "is outside the range of dates a start can have"}


def test_explicit_null_start_at_means_now() -> None:
    """"start_at": null is accepted and leaves the start unset."""
    assert ok(body(start_at=None)).start_at is None


def test_start_at_window_edges() -> None:
    """Exactly the grace in the past and exactly 7 days ahead pass; a second more fails."""
    assert ok(body(start_at="2024-05-01T13:59:00Z")).start_at == NOW - timedelta(seconds=60)
    assert ok(body(start_at="2024-05-08T14:00:00Z")).start_at == NOW + timedelta(days=7)
    assert plan_errors(body(start_at="2024-05-01T13:58:59Z")) == {
        "start_at": "is in the past by more than the misfire grace (60 s)"}
    assert plan_errors(body(start_at="2024-05-08T14:00:01Z")) == {
        "start_at": "is more than 7 days ahead"}


def test_rfc3339_error_names_the_expected_form() -> None:
    """A timestamp without an offset gets the format spelled out."""
    assert errors(body(start_at="2024-05-01T14:00:00")) == {
        "start_at": "must be an RFC 3339 timestamp with an offset, e.g. 2024-05-01T14:30:00Z"}


def test_python_callers_may_pass_aware_datetimes_but_not_naive_ones() -> None:
    """A datetime object is taken as is when aware; a naive one must carry an offset."""
    fields = json.loads(body())
    aware = datetime(2024, 5, 1, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    req = SubmitRequest.model_validate({**fields, "start_at": aware}, context=CTX)
    assert req.start_at == NOW and req.start_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="must carry a UTC offset"):
        SubmitRequest.model_validate({**fields, "start_at": datetime(2024, 5, 1, 14)})


def test_a_valid_trade_date_is_parsed() -> None:
    """"2024-05-02" becomes date(2024, 5, 2); a date object from Python is kept."""
    assert ok(body(trade_date="2024-05-02")).trade_date == date(2024, 5, 2)
    fields = json.loads(body())
    req = SubmitRequest.model_validate({**fields, "trade_date": date(2024, 5, 3)})
    assert req.trade_date == date(2024, 5, 3)


def test_a_trade_date_that_does_not_exist_is_named() -> None:
    """2024-02-30 has the right shape but is no date: the error quotes it."""
    assert errors(body(trade_date="2024-02-30")) == {"trade_date": "is not a real date: 2024-02-30"}


def test_trade_date_error_names_the_format() -> None:
    """A datetime string is not a trade date."""
    assert errors(body(trade_date="2024-05-01T00:00:00Z")) == {
        "trade_date": "must be a date written YYYY-MM-DD"}


# -- prices ------------------------------------------------------------------------------------
def limit(price: Any) -> bytes:
    return body(order_type="limit", limit_price=price)


PRICE_SHAPE = ("must be a decimal number or a string holding one, with at most 12 digits "
               "before the point and 8 after, e.g. \"150.25\"")


def limit_raw(text: str) -> bytes:
    """A limit order whose limit_price is written as raw JSON text (a number, not a string)."""
    return with_raw(f'"limit_price": {text}', order_type="limit")


def test_price_with_eight_decimal_places_is_exact() -> None:
    """0.00000001 is the smallest step, as a string or a number; a ninth decimal is refused."""
    assert ok(limit("0.00000001")).limit_price == Decimal("0.00000001")
    assert ok(limit_raw("0.00000001")).limit_price == Decimal("0.00000001")
    assert errors(limit("0.000000001")) == {"limit_price": PRICE_SHAPE}
    assert errors(limit_raw("0.000000001")) == {
        "limit_price": "Decimal input should have no more than 8 decimal places"}


def test_price_with_twelve_digits_before_the_point_is_the_longest() -> None:
    """12 integer and 8 decimal digits pass, as a string or a number; a 13th is refused."""
    assert ok(limit("123456789012.12345678")).limit_price == Decimal("123456789012.12345678")
    assert ok(limit_raw("123456789012.12345678")).limit_price == Decimal("123456789012.12345678")
    assert errors(limit("1234567890123")) == {"limit_price": PRICE_SHAPE}
    assert errors(limit("1234567890123.12345678")) == {"limit_price": PRICE_SHAPE}
    assert errors(limit_raw("1234567890123")) == {
        "limit_price": "Decimal input should have no more than 12 digits before the decimal point"}
    assert errors(limit_raw("1234567890123.12345678")) == {
        "limit_price": "Decimal input should have no more than 20 digits in total"}


@pytest.mark.parametrize("text", ["1", "150.25", "007", "0.5", "999999999999.99999999"])
def test_price_strings_in_the_plain_decimal_form(text: str) -> None:
    """Digits, optionally a point and 1-8 more digits: the value is that decimal exactly."""
    assert ok(limit(text)).limit_price == Decimal(text)


@pytest.mark.parametrize("text", [
    "1.", ".5", "+1", "-1", "1e2", "1E2", " 1", "1 ", "1\n", "1,5", "NaN", "Infinity", "",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit to Python's \\d, not to the contract
])
def test_price_strings_in_any_other_form_are_refused(text: str) -> None:
    """No sign, exponent, blanks, bare point, non-ASCII digit or special value in a string."""
    assert errors(limit(text)) == {"limit_price": PRICE_SHAPE}


@pytest.mark.parametrize(("price", "message"), [
    ("0", "must be greater than 0"),
    ("00", "must be greater than 0"),
    ("0.00000000", "must be greater than 0"),
    (0, "Input should be greater than 0"),
    (-1, "Input should be greater than 0"),
    (True, "must be a decimal number or a string holding one"),
])
def test_prices_that_are_not_positive_decimals(price: Any, message: str) -> None:
    """Zero written any way, a negative number and a boolean are refused with a reason."""
    assert errors(limit(price)) == {"limit_price": message}


@pytest.mark.parametrize("text", ["1e400", "1e999999999999999999"])
def test_a_price_number_beyond_any_bound_is_refused(text: str) -> None:
    """An exponent too large for the price is refused on limit_price, never a crash."""
    assert set(errors(limit_raw(text))) == {"limit_price"}


def test_a_price_number_beyond_decimal_range_is_out_of_range() -> None:
    """An exponent past what Decimal holds is refused on limit_price as out of range."""
    assert errors(limit_raw("1e9999999999999999999")) == {"limit_price": "number out of range"}


def test_an_integral_price_number_is_its_decimal() -> None:
    """A JSON number price 150 or 1.5e2 is Decimal 150."""
    assert ok(limit_raw("150")).limit_price == Decimal(150)
    assert ok(limit_raw("1.5e2")).limit_price == Decimal(150)


def test_the_published_price_schema_states_the_same_bounds() -> None:
    """The JSON Schema's price: a number in (0, 10^12) by 1e-8, or the plain 12.8-digit string."""
    assert DECIMAL["anyOf"] == [
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1_000_000_000_000,
         "multipleOf": 1e-8},
        {"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,8})?$",
         "not": {"pattern": r"^0+(\.0+)?$"}},
    ]
    assert DECIMAL["description"].startswith(
        "A decimal greater than 0 with at most 12 digits before the point and 8 after,")


def test_an_unrepresentable_number_shows_its_first_twenty_characters() -> None:
    """Its repr is the number's text, cut after 20 characters with '...'."""
    assert repr(Unrepresentable("1e99999999999999999")) == "<number 1e99999999999999999>"
    assert repr(Unrepresentable("9" * 20)) == f"<number {'9' * 20}>"
    assert repr(Unrepresentable("9" * 21)) == f"<number {'9' * 20}...>"


def test_python_float_price_keeps_its_short_form() -> None:
    """A float 0.1 from a Python caller becomes Decimal('0.1'), not its binary expansion."""
    fields = {**json.loads(body()), "order_type": "limit", "limit_price": 0.1}
    assert SubmitRequest.model_validate(fields).limit_price == Decimal("0.1")


@pytest.mark.parametrize(("order_type", "prices", "expected"), [
    ("market", {}, {}),
    ("limit", {"limit_price": "1"}, {}),
    ("stop", {"stop_price": "1"}, {}),
    ("stop_limit", {"limit_price": "1", "stop_price": "1"}, {}),
    ("stop_limit", {}, {"limit_price": "required when order_type is stop_limit",
                        "stop_price": "required when order_type is stop_limit"}),
    ("limit", {"limit_price": "1", "stop_price": "1"},
     {"stop_price": "not allowed when order_type is limit"}),
    ("stop", {"limit_price": "1", "stop_price": "1"},
     {"limit_price": "not allowed when order_type is stop"}),
    ("market", {"stop_price": "1"}, {"stop_price": "not allowed when order_type is market"}),
])
def test_which_prices_each_order_type_needs(order_type: str, prices: dict[str, str],
                                           expected: dict[str, str]) -> None:
    """limit needs limit_price, stop needs stop_price, stop_limit both, market neither."""
    raw = body(order_type=order_type, **prices)
    if expected:
        assert errors(raw) == expected
    else:
        req = ok(raw)
        assert (req.limit_price, req.stop_price) == (
            Decimal(prices["limit_price"]) if "limit_price" in prices else None,
            Decimal(prices["stop_price"]) if "stop_price" in prices else None)


def test_a_bad_order_type_does_not_also_blame_the_prices() -> None:
    """With order_type invalid, only order_type is reported."""
    assert set(errors(body(order_type="iceberg", limit_price="1"))) == {"order_type"}


# -- identifiers -------------------------------------------------------------------------------
def test_identifier_lengths_at_their_limits() -> None:
    """strategy_id 64, symbol 16 and request_id 64 characters pass; request_id may not be ''."""
    req = ok(body(strategy_id="s" * 64, symbol="b" * 16, request_id="r" * 64))
    assert (req.strategy_id, req.symbol, req.request_id) == ("s" * 64, "B" * 16, "r" * 64)
    assert errors(body(request_id="")) == {"request_id": "String should have at least 1 character"}



# -- cancel ------------------------------------------------------------------------------------
def cancel(**fields: Any) -> bytes:
    return json.dumps({"type": "cancel", **fields}).encode()


def test_cancel_defaults() -> None:
    """A bare cancel has no reason and does not cancel working orders."""
    req = parse_request(cancel(parent_order_id="p-1"), CTX)
    assert req == CancelRequest(type="cancel", parent_order_id="p-1")
    assert isinstance(req, CancelRequest)
    assert (req.reason, req.cancel_working_orders) == (None, False)


def test_cancel_working_orders_must_be_a_real_boolean() -> None:
    """true is taken; the string "true" is refused."""
    req = parse_request(cancel(parent_order_id="p-1", cancel_working_orders=True), CTX)
    assert isinstance(req, CancelRequest) and req.cancel_working_orders is True
    found = errors(cancel(parent_order_id="p-1", cancel_working_orders="true"))
    assert found == {"cancel_working_orders": "Input should be a valid boolean"}


def test_cancel_field_lengths_at_their_limits() -> None:
    """parent_order_id 1-24 (the length of every parent id) and reason up to 256 characters."""
    req = parse_request(cancel(parent_order_id="p" * 24, reason="r" * 256), CTX)
    assert isinstance(req, CancelRequest)
    assert (len(req.parent_order_id), len(req.reason or "")) == (24, 256)
    assert errors(cancel(parent_order_id="p" * 25, reason="r" * 257)) == {
        "parent_order_id": "String should have at most 24 characters",
        "reason": "String should have at most 256 characters"}
    assert errors(cancel(parent_order_id="")) == {
        "parent_order_id": "String should have at least 1 character"}


NUL = "must not contain the NUL character (U+0000)"


def test_nul_is_refused_in_free_text() -> None:
    """request_id, parent_order_id and reason refuse NUL (no text column holds it), naming it."""
    assert errors(body(request_id="a\x00b")) == {"request_id": NUL}
    assert errors(cancel(parent_order_id="p\x00", reason="\x00")) == {
        "parent_order_id": NUL, "reason": NUL}
    req = parse_request(cancel(parent_order_id="p\x01", reason="\x7f é"), CTX)
    assert isinstance(req, CancelRequest) and (req.parent_order_id, req.reason) == (
        "p\x01", "\x7f é")


# -- configuration defaults and immutability ---------------------------------------------------
def test_default_limits_and_context() -> None:
    """Without configuration: 10,000,000 shares, 10,000 slices, 86,400 s; no clock, 60 s grace."""
    limits = Limits()
    assert (limits.max_qty, limits.max_slices, limits.max_duration_seconds) == (
        10_000_000, 10_000, 86_400)
    context = RequestContext()
    assert (context.limits, context.now, context.misfire_grace) == (
        Limits(), None, timedelta(seconds=60))


def test_the_default_grace_is_sixty_seconds() -> None:
    """With only a clock given, 60 s in the past passes and 61 s does not."""
    clocked = RequestContext(now=NOW)
    assert ok(body(start_at="2024-05-01T13:59:00Z"), clocked).start_at is not None
    assert set(plan_errors(body(start_at="2024-05-01T13:58:59Z"), clocked)) == {"start_at"}


def test_limits_context_and_requests_are_immutable() -> None:
    """Neither the configuration nor a validated request can be changed afterwards."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        CTX.limits.max_qty = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CTX.now = None  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        ok(body()).qty = 1  # type: ignore[misc]
    cancel_req = parse_request(cancel(parent_order_id="p-1"), CTX)
    with pytest.raises(ValidationError, match="frozen"):
        cancel_req.reason = "x"  # type: ignore[misc]
