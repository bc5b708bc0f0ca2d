"""Hypothesis strategies for raw message bodies of every type (submit, cancel, control) with
extreme values: numbers no float or Decimal holds, integral numbers written as 100.0 or 1e2,
dates at the edges of the calendar with every offset, unicode (lone surrogates, NUL), deep
nesting. Bodies are JSON text written by hand, so a number keeps the exact spelling drawn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

CONTROL_TYPES = ["kill_switch.engage", "kill_switch.release", "breaker.trip", "breaker.reset"]


@dataclass(frozen=True, slots=True)
class Raw:
    """A JSON number written exactly as `text`."""

    text: str


def dumps(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def raw_numbers() -> st.SearchStrategy[Raw]:
    digits = st.text("0123456789", min_size=1, max_size=25).map(lambda d: d.lstrip("0") or "0")
    exponent = st.one_of(
        st.just(""),
        st.integers(-30, 30).map(lambda e: f"e{e}"),
        st.sampled_from(["e99999999999999999999", "E-99999999999999999999", "e+400",
                         "e-400", "E999999999", "e-999999999"]),
    )
    fraction = st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=12)
                         .map(lambda f: "." + f))

    @st.composite
    def build(draw: st.DrawFn) -> Raw:
        sign = draw(st.sampled_from(["", "", "-"]))
        return Raw(sign + draw(digits) + draw(fraction) + draw(exponent))

    return build()


def numbers() -> st.SearchStrategy[Any]:
    edges = [0, 1, -1, 2**31 - 1, 2**31, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 10**30,
             86_400, 86_401, 1_440, 1_441]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(),
        raw_numbers(),
        st.sampled_from([Raw("100.0"), Raw("1e2"), Raw("1.0E+2"), Raw("-0.0"), Raw("0.00000001"),
                         Raw("0.000000001"), Raw("999999999999.99999999"), Raw("1e12"),
                         Raw("150.250000000"), Raw("9" * 5000)]),
    )


def timestamps() -> st.SearchStrategy[str]:
    """RFC 3339-ish text: edge years, months, days, times, fractions and offsets, both cases."""
    two = st.integers(0, 61).map(lambda n: f"{n:02d}")

    @st.composite
    def build(draw: st.DrawFn) -> str:
        year = draw(st.sampled_from([0, 1, 2, 1970, 2030, 2030, 2030, 9999]) | st.integers(0, 9999))
        month = draw(st.sampled_from([1, 2, 6, 12]) | st.integers(0, 13))
        day = draw(st.sampled_from([1, 28, 29, 30, 31]) | st.integers(0, 32))
        sep = draw(st.sampled_from(["T", "T", "t", " "]))
        hh, mm, ss = draw(two), draw(two), draw(two)
        frac = draw(st.sampled_from(["", "", ".5", ".123456", ".123456789", ".1234567890"]))
        offset = draw(st.sampled_from(["Z", "z", "+00:00", "+01:00", "-01:00", "+0200", "+02",
                                       "+23:59", "-23:59", "+24:00", "+05:60", "", "\n", "Z\n"])
                      | st.tuples(st.sampled_from("+-"), two, two).map(
                          lambda t: f"{t[0]}{t[1]}:{t[2]}"))
        return f"{year:04d}-{month:02d}-{day:02d}{sep}{hh}:{mm}:{ss}{frac}{offset}"

    return st.one_of(build(), st.sampled_from(["2030-01-01T12:00:00Z", "2030-01-01T12:00:00+02:00",
                                               "0001-01-01T00:00:00+01:00",
                                               "9999-12-31T23:59:59-01:00", "2030-01-01"]))


def texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=20),
        st.text(st.characters(codec=None), max_size=10),  # lone surrogates, NUL, anything
        st.sampled_from(["", "\u0000", "a\u0000", "\ud800", "x\n", "é", "\U0001f600",
                         "x" * 65, "x" * 257, "a" * 24, "a" * 25, "0", "00.0", "1e2", " 5",
                         "+5", "150.25", "0.00000001", "1234567890123", "2030-01-01"]),
    )


def nested(depth: int = 40) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), texts())
    return st.one_of(
        st.recursive(leaves, lambda kids: st.lists(kids, max_size=3)
                     | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=10),
        st.integers(1, depth).map(lambda n: [[]] if n < 2 else json.loads("[" * n + "]" * n)),
    )


def values() -> st.SearchStrategy[Any]:
    return st.one_of(numbers(), timestamps(), texts(), nested(), st.none(), st.booleans())


def _field_values() -> dict[str, st.SearchStrategy[Any]]:
    """Plausible values per field (valid and near-valid), so the corpus is not all rejections."""
    return {
        "strategy_id": st.sampled_from(["alpha_1", "a", "x" * 64, "x" * 65, "bad id", "é"]),
        "symbol": st.sampled_from(["AAPL", "aapl", "BTC/USD", "BRK.B", "A" * 17, "$"]),
        "side": st.sampled_from(["buy", "sell", "BUY", "hold"]),
        "qty": st.sampled_from([Raw("100"), Raw("100.0"), Raw("1e2"), Raw("100.5"), "100",
                                Raw("9007199254740991"), Raw("9007199254740992"), 0, 1]),
        "duration_seconds": st.sampled_from([60, 86_400, 86_401, 0, Raw("60.0"), None]),
        "duration_minutes": st.sampled_from([1, 1_440, 1_441, None, Raw("5e0")]),
        "interval_seconds": st.sampled_from([1, 10, 60, 86_400, 86_401, 2**31, Raw("1e12"), 0]),
        "order_type": st.sampled_from(["market", "limit", "stop", "stop_limit", "iceberg"]),
        "limit_price": st.sampled_from(["150.25", "0", "0.0", "00.00000001", "150.123456789",
                                        "1234567890123", Raw("150.25"), Raw("1e-8"),
                                        Raw("1.5e2"), Raw("0"), Raw("1e12"), "1e2", " 5", None]),
        "stop_price": st.sampled_from(["149.5", Raw("149.5"), Raw("149.123456789"), "-1", None]),
        "time_in_force": st.sampled_from(["day", "gtc", "ioc", "fok", "week"]),
        "max_slice_qty": st.sampled_from([1, 10, 0, Raw("10.0"), None,
                                          Raw("1e99999999999999999999")]),
        "distribution": st.sampled_from(["front_loaded", "even_random", "random"]),
        "start_at": timestamps(),
        "trade_date": st.sampled_from(["2030-01-01", "2030-02-30", "0000-01-01", "2030-1-1",
                                       "2030-01-01\n", "\uff12\uff10\uff13\uff10-01-01"]),
        "request_id": st.sampled_from(["r-1", "", "r" * 64, "r" * 65, "a\u0000"]),
        "parent_order_id": st.sampled_from(["a" * 24, "a" * 25, "abc", "", "a\u0000"]),
        "reason": st.sampled_from(["done", "", "r" * 256, "r" * 257, "\u0000", None]),
        "cancel_working_orders": st.sampled_from([True, False, 0, "true", None]),
        "operator": st.sampled_from(["ops", "o" * 64, "o" * 65, "", None]),
    }


SUBMIT = {"type": "submit", "strategy_id": "alpha_1", "symbol": "AAPL", "side": "buy",
          "qty": 100, "duration_seconds": 600, "start_at": "2030-01-01T12:00:00Z"}
CANCEL = {"type": "cancel", "parent_order_id": "0123456789abcdef01234567"}


LIMITS_SET = {"type": "limits.set", "strategy_id": "alpha_1", "operator": "alice",
              "reason": "desk limits",
              "limits": {"max_qty": 10000, "max_notional": "2500000",
                         "max_daily_notional": "10000000", "max_open_parents": 20,
                         "max_slices_per_minute": 120, "price_collar_bps": 500,
                         "restricted_symbols": ["GME"], "allowed_symbols": None}}
GRANTS_SET = {"type": "grants.set", "user": "strat_alpha", "strategies": ["alpha_1"],
              "actions": ["submit", "cancel"], "operator": False, "by": "alice"}


def _limit_values() -> dict[str, st.SearchStrategy[Any]]:
    """Plausible values of each limit (valid and near-valid) and of the access fields."""
    counts = st.sampled_from([0, 1, 120, Raw("120.0"), Raw("1e2"), -1, "5", True, None,
                              Raw("9007199254740992"), Raw("1e99999999999999999999")])
    money = st.sampled_from(["2500000", "0", "0.5", "-1", "1e3", Raw("2500000.50"), Raw("1e-9"),
                             "1234567890123", Raw("NaN"), None, 5, True])
    symbols = st.sampled_from([["GME"], [], ["gme", "BRK.B"], ["$"], "GME", [1], None,
                               ["A" * 17]])
    return {
        "max_qty": counts, "max_open_parents": counts, "max_slices_per_minute": counts,
        "price_collar_bps": counts, "max_notional": money, "max_daily_notional": money,
        "restricted_symbols": symbols, "allowed_symbols": symbols,
        "max_qtty": counts,
    }


def access_bodies() -> st.SearchStrategy[bytes]:
    """`limits.set` and `grants.set` bodies: a valid one, then 0-4 fields or limits set,
    added or removed, with plausible or extreme values."""
    limit_values = _limit_values()
    top: dict[str, st.SearchStrategy[Any]] = {
        "strategy_id": st.sampled_from(["*", "alpha_1", "**", "", "x" * 65, "a b"]),
        "user": st.sampled_from(["strat_alpha", "", "u" * 129, "a\u0000"]),
        "strategies": st.sampled_from([["alpha_1"], [], ["*"], "alpha_1", [None]]),
        "actions": st.sampled_from([["submit"], ["trade"], [], "submit", ["submit"] * 6]),
        "operator": st.sampled_from([True, False, "alice", "o" * 65, None, 1]),
        "by": st.sampled_from(["alice", "", None, 5]),
        "reason": st.sampled_from(["why", "", "r" * 257, None]),
        "limits": st.sampled_from([{}, None, [], "x"]),
    }

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        body = json.loads(json.dumps(draw(st.sampled_from([LIMITS_SET, GRANTS_SET]))))
        for _ in range(draw(st.integers(0, 4))):
            inner = isinstance(body.get("limits"), dict) and draw(st.booleans())
            target = body["limits"] if inner else body
            choices = limit_values if inner else top
            key = draw(st.sampled_from([*sorted(choices), "type", "extra"]))
            action = draw(st.sampled_from(["plausible", "plausible", "extreme", "remove"]))
            if action == "remove":
                target.pop(key, None)
            elif action == "plausible" and key in choices:
                target[key] = draw(choices[key])
            elif key == "type":
                target[key] = draw(st.sampled_from(["limits.set", "grants.set", "limits.get"]))
            else:
                target[key] = draw(values())
        return dumps(body).encode("utf-8", "surrogatepass")

    return build()


def bodies(queue: str) -> st.SearchStrategy[bytes]:
    """Bodies for `requests` (submit, cancel, other types) or `control`: a valid message, then
    0-3 fields set, added or removed, with plausible or extreme values."""
    plausible = _field_values()

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        if queue == "requests":
            body: dict[str, Any] = dict(draw(st.sampled_from([SUBMIT, SUBMIT, CANCEL])))
        else:
            body = {"type": draw(st.sampled_from(CONTROL_TYPES)), "reason": "drill"}
        for _ in range(draw(st.integers(0, 3))):
            key = draw(st.sampled_from([*sorted(plausible), "type", "extra", "\u0000", ""]))
            action = draw(st.sampled_from(["plausible", "plausible", "extreme", "remove"]))
            if action == "remove":
                body.pop(key, None)
            elif action == "plausible" and key in plausible:
                body[key] = draw(plausible[key])
            elif key == "type":
                body[key] = draw(st.sampled_from(["submit", "cancel", "modify", *CONTROL_TYPES])
                                 | values())
            else:
                body[key] = draw(values())
        return dumps(body).encode("utf-8", "surrogatepass")

    return build()


def any_bodies() -> st.SearchStrategy[bytes]:
    """Anything at all: messages of both queues, bare values, deep nesting, raw bytes."""
    return st.one_of(
        bodies("requests"),
        bodies("control"),
        access_bodies(),
        values().map(lambda v: dumps(v).encode("utf-8", "surrogatepass")),
        st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.binary(max_size=200),
    )
