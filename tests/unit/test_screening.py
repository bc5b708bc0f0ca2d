"""A batch screened for grants and limits: refusals become Invalid (kind and errors), duplicates
are neither checked nor counted, accepted parents count against the ones after them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from twap_schemas.requests import RequestContext
from worker.core.access import Grant
from worker.core.intake import CancelOrder, Inbound, IntakeItem, Invalid, PlannedSubmit, classify
from worker.core.risk import Limits, NoPrice, Usage
from worker.core.screening import Counted, ScreenInputs, screen

NOW = datetime(2026, 12, 7, 15, tzinfo=UTC)
DAY = date(2026, 12, 7)


def submit(strategy: str = "alpha_1", *, user: str | None = None, qty: int = 100,
           **fields: Any) -> PlannedSubmit:
    body = {"type": "submit", "strategy_id": strategy, "symbol": "AAPL", "side": "buy",
            "qty": qty, "duration_seconds": 60, "interval_seconds": 10,
            "start_at": (NOW + timedelta(minutes=1)).isoformat(), "request_id": "r", **fields}
    item = classify(Inbound(json.dumps(body).encode(), user_id=user), RequestContext(now=NOW),
                    NOW)
    assert isinstance(item, PlannedSubmit)
    return item


def cancel(pid: str, user: str | None = None) -> CancelOrder:
    body = json.dumps({"type": "cancel", "parent_order_id": pid}).encode()
    item = classify(Inbound(body, user_id=user), RequestContext(now=NOW), NOW)
    assert isinstance(item, CancelOrder)
    return item


def outcome(item: IntakeItem) -> tuple[str, list[str]]:
    if isinstance(item, Invalid):
        return item.kind, [f"{e.loc}: {e.msg}" for e in item.errors]
    return type(item).__name__, []


def test_nothing_to_check_passes_every_item_untouched() -> None:
    items: list[IntakeItem] = [submit(), cancel("p"), submit(qty=7)]
    out, counted = screen(items, frozenset(), ScreenInputs())
    assert out == items and counted == []


def test_accepted_parents_count_against_the_next_ones() -> None:
    items = [submit(qty=100, request_id="a"), submit(qty=100, request_id="b"),
             submit(qty=50, request_id="c")]
    inputs = ScreenInputs(limits={"alpha_1": Limits(max_daily_notional=Decimal(50_000))},
                          usage={("alpha_1", DAY): Usage(0, Decimal(15_000))},
                          references={"AAPL": Decimal(200)})
    out, counted = screen(items, frozenset(), inputs)
    assert [outcome(i) for i in out] == [
        ("PlannedSubmit", []),
        ("risk", ["qty: notional 20,000 (100 x 200) on 2026-12-07 with 35,000 already accepted "
                  "exceeds max_daily_notional 50,000 for strategy alpha_1"]),
        ("PlannedSubmit", []),
    ]
    assert counted == [
        Counted(items[0].parent.parent_order_id, "alpha_1", DAY, Decimal(20_000), Decimal(200)),
        Counted(items[2].parent.parent_order_id, "alpha_1", DAY, Decimal(10_000), Decimal(200)),
    ]
    assert out[1].strategy_id == "alpha_1"  # type: ignore[union-attr]


def test_open_parents_count_across_the_strategys_trade_dates() -> None:
    first = submit(request_id="a")
    later = submit(request_id="b", trade_date="2026-12-08",
                   start_at=(NOW + timedelta(days=1)).isoformat())
    inputs = ScreenInputs(limits={"alpha_1": Limits(max_open_parents=1)},
                          usage={("alpha_1", DAY): Usage(0, Decimal(0)),
                                 ("alpha_1", date(2026, 12, 8)): Usage(0, Decimal(0))})
    out, counted = screen([first, later], frozenset(), inputs)
    assert [outcome(i)[0] for i in out] == ["PlannedSubmit", "risk"]
    assert counted == []  # no limit needed a price: nothing to count for the day


def test_duplicates_are_neither_checked_nor_counted() -> None:
    item = submit(qty=100)
    inputs = ScreenInputs(limits={"alpha_1": Limits(max_qty=10, max_open_parents=1)})
    known = frozenset({item.parent.parent_order_id})
    out, counted = screen([item], known, inputs)
    assert out == [item] and counted == []
    ok = ScreenInputs(limits={"alpha_1": Limits(max_open_parents=1)})
    out, _ = screen([submit(), submit()], frozenset(), ok)
    assert [outcome(i)[0] for i in out] == ["PlannedSubmit", "PlannedSubmit"]


def test_missing_price_fails_closed_and_other_strategies_keep_their_limits() -> None:
    inputs = ScreenInputs(limits={"alpha_1": Limits(max_notional=Decimal(1))},
                          references={"AAPL": NoPrice("stale")})
    out, _ = screen([submit(), submit("beta")], frozenset(), inputs)
    assert [outcome(i) for i in out] == [
        ("risk", ["qty: no reference price for AAPL (stale): max_notional 1 for strategy "
                  "alpha_1 cannot be checked (fail closed)"]),
        ("PlannedSubmit", []),
    ]


def test_a_symbol_without_a_fetched_quote_fails_closed() -> None:
    inputs = ScreenInputs(limits={"alpha_1": Limits(max_notional=Decimal(1))})
    (out,), _ = screen([submit()], frozenset(), inputs)
    assert outcome(out) == ("risk", [
        "qty: no reference price for AAPL (no quote was fetched for it (the limits changed "
        "meanwhile)): max_notional 1 for strategy alpha_1 cannot be checked (fail closed)"])


def test_authorization_comes_before_the_limits() -> None:
    grants = {"strat_alpha": Grant.of("strat_alpha", ["alpha_1"], ["submit"], False)}
    inputs = ScreenInputs(authz=True, grants=grants,
                          limits={"alpha_1": Limits(max_qty=1), "beta": Limits(max_qty=1)},
                          cancel_strategies={"p1": "alpha_1", "p2": "beta"})
    items: list[IntakeItem] = [
        submit(user="strat_alpha", qty=50), submit("beta", user="strat_alpha", qty=50),
        submit(qty=50), cancel("p1", "strat_alpha"), cancel("p2", None),
    ]
    out, _ = screen(items, frozenset(), inputs)
    assert [outcome(i) for i in out] == [
        ("risk", ["qty: 50 exceeds max_qty 1 for strategy alpha_1"]),
        ("unauthorized", ["strategy_id: user strat_alpha holds no 'submit' grant for "
                          "strategy beta"]),
        ("unauthorized", ["properties.user_id: authorization is on and the message carries "
                          "no AMQP user_id"]),
        ("unauthorized", ["parent_order_id: user strat_alpha holds no 'cancel' grant for the "
                          "strategy of parent p1"]),
        ("unauthorized", ["properties.user_id: authorization is on and the message carries "
                          "no AMQP user_id"]),
    ]
    assert [getattr(i, "strategy_id", None) for i in out] == [
        "alpha_1", "beta", "alpha_1", None, None]


def test_a_granted_cancel_and_invalid_items_pass_through() -> None:
    grants = {"u": Grant.of("u", ["alpha_1"], ["cancel"], False)}
    bad = classify(Inbound(b"{}"), RequestContext(now=NOW), NOW)
    granted = cancel("p1", "u")
    out, _ = screen([granted, bad], frozenset(),
                    ScreenInputs(authz=True, grants=grants, cancel_strategies={"p1": "alpha_1"}))
    assert out == [granted, bad]


def test_a_cancel_after_its_submit_in_the_batch_is_authorized_by_that_strategy() -> None:
    grants = {"u": Grant.of("u", ["alpha_1"], ["submit", "cancel"], False)}
    first = submit(user="u")
    later = cancel(first.parent.parent_order_id, "u")
    out, _ = screen([first, later], frozenset(), ScreenInputs(authz=True, grants=grants))
    assert out == [first, later]


def test_one_strategys_parents_do_not_count_against_another() -> None:
    inputs = ScreenInputs(
        limits={"alpha_1": Limits(max_open_parents=1), "beta": Limits(max_open_parents=1)},
        usage={("alpha_1", DAY): Usage(), ("beta", DAY): Usage()})
    out, _ = screen([submit("alpha_1"), submit("beta")], frozenset(), inputs)
    assert [outcome(i)[0] for i in out] == ["PlannedSubmit", "PlannedSubmit"]


def test_a_parent_counts_once_on_the_strategys_other_trade_dates() -> None:
    day2 = date(2026, 12, 8)
    later: dict[str, Any] = {"trade_date": "2026-12-08",
                             "start_at": (NOW + timedelta(days=1)).isoformat()}
    items = [submit(request_id="a"), submit(request_id="b", **later),
             submit(request_id="c", **later)]
    inputs = ScreenInputs(limits={"alpha_1": Limits(max_open_parents=2)},
                          usage={("alpha_1", DAY): Usage(), ("alpha_1", day2): Usage()})
    out, _ = screen(items, frozenset(), inputs)
    assert [outcome(i) for i in out] == [
        ("PlannedSubmit", []), ("PlannedSubmit", []),
        ("risk", ["strategy_id: 2 parents open; max_open_parents 2 for strategy alpha_1"])]


def test_screening_records_are_frozen_and_slotted() -> None:
    import dataclasses

    import pytest

    for record in (ScreenInputs(), Counted("p", "s", DAY, Decimal(1), Decimal(1))):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, dataclasses.fields(record)[0].name, None)
        assert not hasattr(record, "__dict__")
