"""`limits.set` and `grants.set` as the worker parses them: every field's bounds, absent vs null
limits, and the switch parser refusing them."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from twap_schemas.control import ControlCommand, GrantsSet, LimitsSet
from twap_schemas.parse import InvalidMessage, parse_control, parse_switch

LIMITS: dict[str, Any] = {"type": "limits.set", "strategy_id": "alpha_1", "limits": {}}
GRANTS: dict[str, Any] = {"type": "grants.set", "user": "strat_alpha", "strategies": [],
                          "actions": []}


def parse(body: dict[str, Any]) -> Any:
    return parse_control(json.dumps(body).encode())


def refusal(body: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidMessage) as exc:
        parse(body)
    assert exc.value.kind == "schema"
    return [(e.loc, e.msg) for e in exc.value.errors]


def limits(**values: Any) -> dict[str, Any]:
    return {**LIMITS, "limits": values}


def test_the_contracts_example_parses_and_names_its_changes() -> None:
    command = parse({
        "type": "limits.set", "strategy_id": "alpha_1", "operator": "alice",
        "reason": "desk limits 2026-12",
        "limits": {"max_qty": 10000, "max_notional": "2500000", "max_daily_notional": "10000000",
                   "max_open_parents": 20, "max_slices_per_minute": 120,
                   "price_collar_bps": 500, "restricted_symbols": ["GME"],
                   "allowed_symbols": None}})
    assert isinstance(command, LimitsSet)
    assert command.changes() == {
        "max_qty": 10000, "max_notional": Decimal("2500000"),
        "max_daily_notional": Decimal("10000000"), "max_open_parents": 20,
        "max_slices_per_minute": 120, "price_collar_bps": 500,
        "restricted_symbols": ["GME"], "allowed_symbols": None}
    assert (command.operator, command.reason) == ("alice", "desk limits 2026-12")


def test_absent_keys_are_no_change_and_null_removes() -> None:
    command = parse(limits(max_qty=None, price_collar_bps=0))
    assert command.changes() == {"max_qty": None, "price_collar_bps": 0}
    assert parse(limits()).changes() == {}


@pytest.mark.parametrize("key", ["max_qty", "max_open_parents", "max_slices_per_minute",
                                 "price_collar_bps"])
def test_count_limits_are_integers_from_0_to_2_53_minus_1(key: str) -> None:
    assert parse(limits(**{key: 0})).changes() == {key: 0}
    assert parse(limits(**{key: 9_007_199_254_740_991})).changes() == {
        key: 9_007_199_254_740_991}
    assert refusal(limits(**{key: -1})) == [
        (f"limits.{key}", "Input should be greater than or equal to 0")]
    assert refusal(limits(**{key: 9_007_199_254_740_992})) == [
        (f"limits.{key}", "Input should be less than or equal to 9007199254740991")]
    assert refusal(limits(**{key: "5"})) == [(f"limits.{key}", "Input should be a valid integer")]
    assert refusal(limits(**{key: True})) == [
        (f"limits.{key}", "Input should be a valid integer")]


@pytest.mark.parametrize("key", ["max_notional", "max_daily_notional"])
def test_money_limits_are_positive_decimals(key: str) -> None:
    assert parse(limits(**{key: "0.5"})).changes() == {key: Decimal("0.5")}
    assert parse(limits(**{key: 5})).changes() == {key: Decimal(5)}
    assert refusal(limits(**{key: "0"}))[0][0] == f"limits.{key}"
    assert refusal(limits(**{key: "-1"}))[0][0] == f"limits.{key}"


@pytest.mark.parametrize("key", ["restricted_symbols", "allowed_symbols"])
def test_symbol_lists(key: str) -> None:
    assert parse(limits(**{key: ["GME", "BRK.B", "BTC/USD"]})).changes() == {
        key: ["GME", "BRK.B", "BTC/USD"]}
    assert parse(limits(**{key: []})).changes() == {key: []}
    assert refusal(limits(**{key: ["$"]}))[0][0] == f"limits.{key}.0"
    assert refusal(limits(**{key: ["A" * 17]}))[0][0] == f"limits.{key}.0"
    assert refusal(limits(**{key: "GME"})) == [(f"limits.{key}", "Input should be a valid list")]
    assert parse(limits(**{key: ["A"] * 10_000})).changes() == {key: ["A"] * 10_000}
    assert refusal(limits(**{key: ["A"] * 10_001}))[0][0] == f"limits.{key}"


def test_unknown_limit_and_strategy_names() -> None:
    assert refusal(limits(max_qtty=1)) == [
        ("limits.max_qtty", "unknown field (not part of the contract; check its spelling)")]
    assert parse({**LIMITS, "strategy_id": "*"}).strategy_id == "*"
    assert parse({**LIMITS, "strategy_id": "x" * 64}).strategy_id == "x" * 64
    for bad in ("**", "", "x" * 65, "a b", "a*"):
        assert refusal({**LIMITS, "strategy_id": bad})[0][0] == "strategy_id"
    assert refusal({"type": "limits.set", "strategy_id": "a"}) == [("limits", "field required")]


def test_operator_and_reason_bounds() -> None:
    assert parse({**LIMITS, "operator": "o" * 64, "reason": "r" * 256}).reason == "r" * 256
    assert refusal({**LIMITS, "operator": "o" * 65})[0][0] == "operator"
    assert refusal({**LIMITS, "reason": ""})[0][0] == "reason"
    assert refusal({**LIMITS, "reason": "r" * 257})[0][0] == "reason"
    assert parse(LIMITS).operator is None and parse(LIMITS).reason is None


def test_grants_set() -> None:
    command = parse({**GRANTS, "strategies": ["alpha_1", "alpha_2"],
                     "actions": ["submit", "cancel", "pause", "resume", "amend"],
                     "operator": True, "by": "alice", "reason": "new"})
    assert isinstance(command, GrantsSet)
    assert (command.user, command.strategies, command.actions, command.operator, command.by) == (
        "strat_alpha", ["alpha_1", "alpha_2"], ["submit", "cancel", "pause", "resume", "amend"],
        True, "alice")
    bare = parse(GRANTS)
    assert (bare.operator, bare.by, bare.reason) == (False, None, None)
    assert refusal({**GRANTS, "actions": ["trade"]}) == [("actions.0", (
        "Input should be 'submit', 'cancel', 'pause', 'resume' or 'amend'"))]
    assert refusal({**GRANTS, "actions": ["submit"] * 6})[0][0] == "actions"
    assert refusal({**GRANTS, "strategies": ["*"]})[0][0] == "strategies.0"
    assert refusal({**GRANTS, "strategies": ["a"] * 10_001})[0][0] == "strategies"
    assert refusal({**GRANTS, "user": ""})[0][0] == "user"
    assert refusal({**GRANTS, "user": "u" * 129})[0][0] == "user"
    assert parse({**GRANTS, "user": "u" * 128}).user == "u" * 128
    assert refusal({**GRANTS, "by": "b" * 65})[0][0] == "by"
    assert refusal({**GRANTS, "reason": ""})[0][0] == "reason"
    assert refusal({**GRANTS, "extra": 1})[0][0] == "extra"


def test_the_switch_parser_takes_switch_commands_only() -> None:
    assert isinstance(parse_switch(b'{"type": "breaker.reset"}'), ControlCommand)
    with pytest.raises(InvalidMessage) as exc:
        parse_switch(json.dumps(LIMITS).encode())
    assert exc.value.errors[0].loc == "type"
    assert isinstance(parse({"type": "breaker.reset"}), ControlCommand)


def test_boundaries_accepted() -> None:
    for number in (b"100.0", b"1e2"):
        raw = b'{"type": "limits.set", "strategy_id": "a", "limits": {"max_qty": ' + number + b"}}"
        assert parse_control(raw).changes() == {"max_qty": 100}  # type: ignore[union-attr]
    assert parse({**LIMITS, "reason": "r"}).reason == "r"
    assert parse({**GRANTS, "user": "u"}).user == "u"
    assert parse({**GRANTS, "by": "b" * 64}).by == "b" * 64
    assert parse({**GRANTS, "reason": "r"}).reason == "r"
    assert parse({**GRANTS, "reason": "r" * 256}).reason == "r" * 256
    assert refusal({**GRANTS, "reason": "r" * 257})[0][0] == "reason"
    assert len(parse({**GRANTS, "strategies": ["a"] * 10_000}).strategies) == 10_000


def test_messages_are_frozen() -> None:
    from pydantic import ValidationError

    for message, field in ((parse(LIMITS), "strategy_id"), (parse(LIMITS).limits, "max_qty"),
                           (parse(GRANTS), "user")):
        with pytest.raises(ValidationError):
            setattr(message, field, "x")


def test_limit_descriptions_in_the_published_schema() -> None:
    from twap_schemas.control import LimitValues

    described = {name: f.description for name, f in LimitValues.model_fields.items()}
    assert described == {
        "max_qty": "shares per parent",
        "max_notional": "per parent: qty x the reference price",
        "max_daily_notional": "per strategy and trade date, over its accepted parents",
        "max_open_parents": None,
        "max_slices_per_minute": "per strategy, across its parents",
        "price_collar_bps": "limit and stop prices within this distance of the reference",
        "restricted_symbols": None,
        "allowed_symbols": None,
    }
