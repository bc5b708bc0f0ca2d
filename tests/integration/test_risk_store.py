"""Risk limits and grants in the store, on both databases: every limit at intake, the default
row, the audit rows and events of changes, authorization, and batches in flight together that
must not both pass a limit only one fits."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from twap_schemas.requests import RequestContext
from worker.core.access import Grant
from worker.core.intake import Inbound, IntakeItem, classify
from worker.core.risk import Limits, NoPrice
from worker.store.intake import Screening
from worker.store.repository import Store

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
Q = "t.requests"


def submit(strategy: str = "alpha_1", *, user: str | None = None, message_id: str | None = None,
           **fields: Any) -> IntakeItem:
    body: dict[str, Any] = {
        "type": "submit", "strategy_id": strategy, "symbol": "AAPL", "side": "buy",
        "qty": 100, "duration_seconds": 60, "interval_seconds": 10,
        "start_at": (NOW + timedelta(minutes=5)).isoformat(), "request_id": uuid.uuid4().hex,
    }
    body.update(fields)
    return classify(Inbound(json.dumps(body).encode(), user_id=user, message_id=message_id),
                    RequestContext(now=NOW), NOW)


def cancel(pid: str, *, user: str | None = None) -> IntakeItem:
    body = json.dumps({"type": "cancel", "parent_order_id": pid}).encode()
    return classify(Inbound(body, user_id=user), RequestContext(now=NOW), NOW)


async def rejections(store: Store) -> list[tuple[str, str]]:
    """(loc, msg) of every request.rejected in the outbox, in order."""
    out = []
    for _, row in await store.outbox_fetch(1000):
        if row.type == "request.rejected":
            out += [(e["loc"], e["msg"]) for e in json.loads(row.body)["errors"]]
    return out


async def dead_letters(store: Store) -> list[str]:
    return [str((row.headers or {}).get("x-twap-reason"))
            for _, row in await store.outbox_fetch(1000) if row.exchange == "dlx"]


PRICES = Screening(references={"AAPL": Decimal("200"), "MSFT": Decimal("400")})


async def test_no_limits_accepts_everything(store: Store) -> None:
    results = await store.apply_intake([submit(qty=10**6)], NOW, Q, screening=PRICES)
    assert [r.outcome for r in results] == ["accepted"]


async def test_max_qty_from_the_default_row_refuses_into_the_dlq(store: Store) -> None:
    await store.set_limits("*", {"max_qty": 10_000}, by="alice", reason="desk", now=NOW)
    results = await store.apply_intake([submit(qty=12_000), submit(qty=10_000)], NOW, Q,
                                       screening=PRICES)
    assert [r.outcome for r in results] == ["rejected", "accepted"]
    assert await rejections(store) == [
        ("qty", "12,000 exceeds max_qty 10,000 for strategy alpha_1")]
    assert await dead_letters(store) == ["risk"]


async def test_strategy_row_overrides_the_default_row(store: Store) -> None:
    await store.set_limits("*", {"max_qty": 10_000}, by="alice", reason=None, now=NOW)
    await store.set_limits("beta", {"max_qty": 50}, by="alice", reason=None, now=NOW)
    results = await store.apply_intake([submit("beta", qty=60), submit("alpha_1", qty=60)],
                                       NOW, Q, screening=PRICES)
    assert [r.outcome for r in results] == ["rejected", "accepted"]
    assert await rejections(store) == [("qty", "60 exceeds max_qty 50 for strategy beta")]


async def test_every_intake_limit(store: Store) -> None:
    await store.set_limits("alpha_1", {
        "max_notional": Decimal(30_000), "max_daily_notional": Decimal(50_000),
        "max_open_parents": 3, "price_collar_bps": 500, "restricted_symbols": ["GME"],
    }, by="alice", reason=None, now=NOW)
    items = [
        submit(qty=200),  # 40,000 notional: over max_notional
        submit(symbol="GME"),  # restricted
        submit(order_type="limit", limit_price="250"),  # collar: 2,500 bps
        submit(qty=100),  # 20,000
        submit(qty=100),  # 40,000 for the day
        submit(qty=100),  # 60,000 > 50,000 daily
        submit(qty=10),  # 42,000 for the day; the third open parent
        submit(qty=6),  # a fourth open parent
    ]
    results = await store.apply_intake(items, NOW, Q, screening=PRICES)
    assert [r.outcome for r in results] == [
        "rejected", "rejected", "rejected", "accepted", "accepted", "rejected", "accepted",
        "rejected"]
    assert await rejections(store) == [
        ("qty", "notional 40,000 (200 x 200) exceeds max_notional 30,000 for strategy alpha_1"),
        ("symbol", "GME is in restricted_symbols for strategy alpha_1"),
        ("limit_price", "250 is 2,500.0 bps from the reference price 200 of AAPL; exceeds "
                        "price_collar_bps 500 for strategy alpha_1"),
        ("qty", "notional 20,000 (100 x 200) on 2026-12-07 with 40,000 already accepted "
                "exceeds max_daily_notional 50,000 for strategy alpha_1"),
        ("strategy_id", "3 parents open; max_open_parents 3 for strategy alpha_1"),
    ]
    # The day's usage survives the batch: a later batch sees 42,000 already accepted.
    later = await store.apply_intake([submit(qty=41)], NOW, Q, screening=PRICES)
    assert later[0].outcome == "rejected"


async def test_no_reference_price_fails_closed(store: Store) -> None:
    await store.set_limits("*", {"max_notional": Decimal(10**9)}, by="alice", reason=None,
                           now=NOW)
    screening = Screening(references={"AAPL": NoPrice("quote unavailable: timed out")})
    results = await store.apply_intake([submit(), submit(symbol="MSFT")], NOW, Q,
                                       screening=screening)
    assert [r.outcome for r in results] == ["rejected", "rejected"]
    assert await rejections(store) == [
        ("qty", "no reference price for AAPL (quote unavailable: timed out): max_notional "
                "1,000,000,000 for strategy alpha_1 cannot be checked (fail closed)"),
        ("qty", "no reference price for MSFT (no quote was fetched for it (the limits changed "
                "meanwhile)): max_notional 1,000,000,000 for strategy alpha_1 cannot be "
                "checked (fail closed)"),
    ]


async def test_a_duplicate_is_not_checked_again(store: Store) -> None:
    first = submit(qty=100)
    assert (await store.apply_intake([first], NOW, Q, screening=PRICES))[0].outcome == "accepted"
    await store.set_limits("*", {"max_qty": 1}, by="alice", reason=None, now=NOW)
    again = await store.apply_intake([first], NOW, Q, screening=PRICES)
    assert again[0].outcome == "duplicate"


@pytest.mark.parametrize("batches", [8])
async def test_batches_in_flight_together_never_pass_a_limit_only_some_fit(
        database_url: str, batches: int) -> None:
    """Eight one-submit batches at once, each on its own connection, with room for three
    open parents and a daily notional for three: exactly three are accepted."""
    admin = Store.from_url(database_url)
    await admin.set_limits("alpha_1", {"max_open_parents": 3}, by="alice", reason=None, now=NOW)
    await admin.set_limits("beta", {"max_daily_notional": Decimal(60_000)}, by="alice",
                           reason=None, now=NOW)
    stores = [Store.from_url(database_url) for _ in range(batches)]
    try:
        results = await asyncio.gather(*[
            s.apply_intake([submit("alpha_1"), submit("beta")], NOW, Q, screening=PRICES)
            for s in stores])
        open_outcomes = sorted(r[0].outcome for r in results)
        day_outcomes = sorted(r[1].outcome for r in results)
        assert open_outcomes == ["accepted"] * 3 + ["rejected"] * (batches - 3)
        assert day_outcomes == ["accepted"] * 3 + ["rejected"] * (batches - 3)
    finally:
        for s in stores:
            await s.close()
        await admin.close()


async def test_limit_changes_are_audited_and_published(store: Store) -> None:
    first = await store.set_limits("alpha_1", {"max_qty": 10, "restricted_symbols": ["gme"]},
                                   by="alice", reason="desk limits", now=NOW)
    assert first == (None, Limits(max_qty=10, restricted_symbols=frozenset({"GME"})))
    later = NOW + timedelta(minutes=1)
    second = await store.set_limits("alpha_1", {"max_qty": None, "price_collar_bps": 50},
                                    by="bob", reason=None, now=later)
    assert second == (Limits(max_qty=10, restricted_symbols=frozenset({"GME"})),
                      Limits(price_collar_bps=50, restricted_symbols=frozenset({"GME"})))
    history = await store.audit_history("limits", "alpha_1")
    assert [(h.changed_by, h.changed_at, h.old, h.new, h.reason) for h in history] == [
        ("bob", later, {"max_qty": 10, "restricted_symbols": ["GME"]},
         {"price_collar_bps": 50, "restricted_symbols": ["GME"]}, None),
        ("alice", NOW, None, {"max_qty": 10, "restricted_symbols": ["GME"]}, "desk limits"),
    ]
    published = [json.loads(row.body) for _, row in await store.outbox_fetch(10)]
    assert [(p["event_type"], p["strategy_id"], p["operator"], p["old"], p["new"])
            for p in published] == [
        ("control.limits.changed", "alpha_1", "alice", None,
         {"max_qty": 10, "restricted_symbols": ["GME"]}),
        ("control.limits.changed", "alpha_1", "bob",
         {"max_qty": 10, "restricted_symbols": ["GME"]},
         {"price_collar_bps": 50, "restricted_symbols": ["GME"]}),
    ]
    assert [row.routing_key for _, row in await store.outbox_fetch(10)] == [
        "control.limits.changed"] * 2
    assert await store.limit_rows() == {
        "alpha_1": Limits(price_collar_bps=50, restricted_symbols=frozenset({"GME"}))}


async def test_grant_changes_replace_the_grant_audited_and_published(store: Store) -> None:
    grant = Grant.of("strat_alpha", ["alpha_1", "alpha_2"], ["submit", "cancel"], False)
    assert await store.set_grant(grant, by="alice", reason="new strategy", now=NOW) is None
    narrower = Grant.of("strat_alpha", ["alpha_1"], ["submit"], False)
    assert await store.set_grant(narrower, by="alice", reason=None, now=NOW) == grant
    assert await store.grant_of("strat_alpha") == narrower
    assert await store.grant_of("nobody") is None
    history = await store.audit_history("grants", "strat_alpha")
    assert [(h.old, h.new) for h in history] == [
        ({"user": "strat_alpha", "strategies": ["alpha_1", "alpha_2"],
          "actions": ["submit", "cancel"], "operator": False},
         {"user": "strat_alpha", "strategies": ["alpha_1"], "actions": ["submit"],
          "operator": False}),
        (None, {"user": "strat_alpha", "strategies": ["alpha_1", "alpha_2"],
                "actions": ["submit", "cancel"], "operator": False}),
    ]
    types = [row.type for _, row in await store.outbox_fetch(10)]
    assert types == ["control.grants.changed"] * 2


async def test_authorization_at_intake(store: Store) -> None:
    await store.set_grant(Grant.of("strat_alpha", ["alpha_1"], ["submit"], False), by="alice",
                          reason=None, now=NOW)
    on = Screening(authz=True, references=PRICES.references)
    accepted = submit("alpha_1", user="strat_alpha")
    results = await store.apply_intake([
        accepted,
        submit("alpha_2", user="strat_alpha"),
        submit("alpha_1", user="stranger"),
        submit("alpha_1"),
    ], NOW, Q, screening=on)
    assert [r.outcome for r in results] == ["accepted", "rejected", "rejected", "rejected"]
    pid = accepted.parent.parent_order_id  # type: ignore[union-attr]
    cancels = await store.apply_intake([cancel(pid, user="strat_alpha")], NOW, Q, screening=on)
    assert [r.outcome for r in cancels] == ["rejected"]
    assert await rejections(store) == [
        ("strategy_id", "user strat_alpha holds no 'submit' grant for strategy alpha_2"),
        ("strategy_id", "user stranger holds no 'submit' grant for strategy alpha_1"),
        ("properties.user_id", "authorization is on and the message carries no AMQP user_id"),
        ("parent_order_id", f"user strat_alpha holds no 'cancel' grant for the strategy of "
                            f"parent {pid}"),
    ]
    assert await dead_letters(store) == ["unauthorized"] * 4


async def test_authorization_off_lets_anyone(store: Store) -> None:
    results = await store.apply_intake([submit(user="stranger"), submit()], NOW, Q,
                                       screening=Screening(authz=False))
    assert [r.outcome for r in results] == ["accepted", "accepted"]


async def test_open_parents_across_trade_dates(store: Store) -> None:
    await store.set_limits("*", {"max_open_parents": 1}, by="alice", reason=None, now=NOW)
    results = await store.apply_intake([
        submit(trade_date="2026-12-07"), submit(trade_date="2026-12-08",
                                                start_at=(NOW + timedelta(days=1)).isoformat()),
    ], NOW, Q, screening=PRICES)
    assert [r.outcome for r in results] == ["accepted", "rejected"]


async def test_slice_turns_are_taken_one_after_the_other(store: Store) -> None:
    def decide(recent: list[datetime]) -> datetime | None:
        return NOW + timedelta(seconds=len(recent))

    turns = [await store.slice_turn("alpha_1", f"c{i:023d}", NOW, decide) for i in range(3)]
    assert turns == [NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)]
