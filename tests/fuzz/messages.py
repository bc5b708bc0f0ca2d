"""Hypothesis strategies for `N.requests` bodies: valid submits, the same submits mutated one
field at a time, wrong types, garbage bytes, huge bodies, unknown fields, unknown cancels.

Every message is generated up front with a fixed seed (derandomized) so a run is repeatable.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

KINDS = (
    "valid",
    "mutated",
    "wrong_type",
    "garbage",
    "not_object",
    "unknown_field",
    "bad_cancel",
    "unknown_cancel",
)
WEIRD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    "",
    "x" * 300,
    [],
    {},
    [1],
    {"a": 1},
    10**30,
    "NaN",
    "1e400",
    "\u0000",
    "2024-13-45",
]


@dataclass(frozen=True, slots=True)
class FuzzMessage:
    kind: str
    body: bytes


def _text(alphabet: str, low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=low, max_size=high)


def valid_submits(start_at: datetime) -> st.SearchStrategy[dict[str, Any]]:
    """Submits the worker accepts, starting far enough ahead that no slice fires in the test."""
    word = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    prices = st.decimals(min_value=1, max_value=5000, places=2).map(str)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        order_type = draw(st.sampled_from(["market", "limit", "stop", "stop_limit"]))
        interval = draw(st.integers(1, 10))
        duration = draw(st.integers(1, 30))
        slices = max(1, -(-duration // interval))
        body: dict[str, Any] = {
            "type": "submit",
            "strategy_id": draw(_text(word, 1, 20)),
            "symbol": draw(_text("ABCDEFGHIJKLMNOPQRSTUVWXYZ.", 1, 6)),
            "side": draw(st.sampled_from(["buy", "sell"])),
            "qty": draw(st.integers(slices, 100_000)),
            "duration_seconds": duration,
            "interval_seconds": interval,
            "order_type": order_type,
            "time_in_force": draw(st.sampled_from(["day", "gtc", "ioc", "fok"])),
            "distribution": draw(st.sampled_from(["front_loaded", "even_random"])),
            "start_at": start_at.isoformat(),
            "request_id": draw(_text(word, 1, 32)),
        }
        if order_type in {"limit", "stop_limit"}:
            body["limit_price"] = draw(prices)
        if order_type in {"stop", "stop_limit"}:
            body["stop_price"] = draw(prices)
        return body

    return build()


def messages(start_at: datetime) -> st.SearchStrategy[FuzzMessage]:
    submit = valid_submits(start_at)

    @st.composite
    def build(draw: st.DrawFn) -> FuzzMessage:
        kind = draw(st.sampled_from(KINDS))
        if kind == "valid":
            return FuzzMessage(kind, _dump(draw(submit)))
        if kind == "mutated":
            body = draw(submit)
            key = draw(st.sampled_from(sorted(body)))
            if draw(st.booleans()):
                del body[key]
            else:
                body[key] = draw(st.sampled_from(WEIRD_VALUES) | st.integers() | st.text())
            return FuzzMessage(kind, _dump(body))
        if kind == "wrong_type":
            body = draw(submit)
            body["type"] = draw(st.sampled_from(WEIRD_VALUES) | st.text(max_size=10))
            return FuzzMessage(kind, _dump(body))
        if kind == "unknown_field":
            body = draw(submit)
            body[draw(st.sampled_from(["limit_prce", "qtty", "extra", "Type", ""]))] = 1
            return FuzzMessage(kind, _dump(body))
        if kind == "garbage":
            return FuzzMessage(kind, draw(st.binary(max_size=300)))
        if kind == "not_object":
            value = draw(st.sampled_from(WEIRD_VALUES) | st.lists(st.integers(), max_size=5))
            return FuzzMessage(kind, _dump(value))
        if kind == "bad_cancel":
            body = {
                "type": "cancel",
                "parent_order_id": draw(st.sampled_from(WEIRD_VALUES)),
                "reason": draw(st.sampled_from(WEIRD_VALUES)),
            }
            return FuzzMessage(kind, _dump(body))
        pid = draw(_text("0123456789abcdef", 24, 24))
        return FuzzMessage(kind, _dump({"type": "cancel", "parent_order_id": pid}))

    return build()


def generate(count: int, start_at: datetime, seed: int = 4) -> list[FuzzMessage]:
    """`count` messages: hypothesis draws them (derandomized), then a seeded shuffle mixes in
    repeats of valid submits (duplicates) and a few bodies over the 64 KiB limit."""
    rng = random.Random(seed)
    extra = count // 20 + 5
    drawn: list[FuzzMessage] = []

    @settings(
        max_examples=count - extra,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(messages(start_at))
    def collect(message: FuzzMessage) -> None:
        drawn.append(message)

    collect()
    valid = [m for m in drawn if m.kind == "valid"]
    repeats = [FuzzMessage("duplicate", rng.choice(valid).body) for _ in range(count // 20)]
    huge = [
        FuzzMessage("huge", _dump({"type": "submit", "pad": "x" * rng.randint(66_000, 200_000)}))
        for _ in range(5)
    ]
    out = drawn + repeats + huge
    rng.shuffle(out)
    return out


def _dump(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()
