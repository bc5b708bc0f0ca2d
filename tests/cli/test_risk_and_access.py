"""Risk limits and authorization through a running worker and the `twap` CLI: limits set by
`twap limits set` refuse a submit into the DLQ with its reply; with TWAP_AUTHZ=on, grants
decide who may submit and who may send control commands; the CLI refuses switch commands of a
user without the operator role."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from tests.cli.conftest import Cli
from tests.support.harness import Harness, submit_body
from worker.core.access import Grant

pytestmark = pytest.mark.e2e


async def test_limits_set_by_the_cli_refuse_a_submit_into_the_dlq(
        harness: Harness, cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="worker.app")
    await harness.start_worker()
    assert any(r.message == "worker.authz_off" for r in caplog.records)
    result = await cli("limits", "set", "*", "--max-qty", "10000", "--reason", "desk limits")
    assert result.exit_code == 0, result.output
    assert result.stdout == 'limits of *: {"max_qty": 10000}\n'
    cid = await harness.publish(submit_body(qty=12_000), reply=True)
    reply = await harness.reply_for(cid)
    assert reply["outcome"] == "rejected"
    assert reply["errors"] == [
        {"loc": "qty", "msg": "12,000 exceeds max_qty 10,000 for strategy alpha_1"}]
    (dead,) = await harness.dlq_messages(1)
    assert dead.headers["x-twap-reason"] == "risk"
    assert dead.headers["x-twap-errors"] == (
        "qty: 12,000 exceeds max_qty 10,000 for strategy alpha_1")
    ok = await harness.reply_for(await harness.publish(submit_body(qty=100), reply=True))
    assert ok["outcome"] == "accepted"
    await harness.events.wait_for(lambda: harness.events.of("control.limits.changed"))
    (changed,) = harness.events.of("control.limits.changed")
    assert (changed["strategy_id"], changed["old"], changed["new"], changed["reason"]) == (
        "*", None, {"max_qty": 10000}, "desk limits")
    shown = await cli.json("limits", "show", "alpha_1")
    assert shown == {"rows": {"*": {"max_qty": 10000}}, "strategy_id": "alpha_1",
                     "effective": {"max_qty": 10000}}


async def test_grants_by_the_cli_round_trip(harness: Harness, cli: Cli) -> None:
    await harness.start_worker()
    result = await cli("grants", "set", "strat_alpha", "--strategy", "alpha_1", "--action",
                       "submit", "--action", "cancel", "--reason", "new strategy")
    assert result.exit_code == 0, result.output
    assert await cli.json("grants", "show") == [
        {"user": "strat_alpha", "strategies": ["alpha_1"], "actions": ["submit", "cancel"],
         "operator": False}]
    bad = await cli("grants", "set", "strat_alpha", "--action", "trade")
    assert bad.exit_code == 2
    assert "actions.0: Input should be 'submit', 'cancel', 'pause', 'resume' or 'amend'" in (
        bad.stderr)


async def test_authz_on_grants_decide_who_may_submit(harness: Harness) -> None:
    """The harness publishes as `guest` (RabbitMQ checks user_id against the connection)."""
    worker = await harness.start_worker(authz="on")
    await worker.store.set_grant(Grant.of("guest", ["alpha_1"], ["submit"], False), by="test",
                                 reason=None, now=datetime.now(UTC))
    granted = await harness.reply_for(await harness.publish(
        submit_body(qty=100), reply=True, user_id="guest"))
    assert granted["outcome"] == "accepted"
    other = await harness.reply_for(await harness.publish(
        submit_body(strategy_id="alpha_2"), reply=True, user_id="guest"))
    assert other["errors"] == [{"loc": "strategy_id", "msg": (
        "user guest holds no 'submit' grant for strategy alpha_2")}]
    anonymous = await harness.reply_for(await harness.publish(submit_body(), reply=True))
    assert anonymous["errors"] == [{"loc": "properties.user_id", "msg": (
        "authorization is on and the message carries no AMQP user_id")}]
    dead = await harness.dlq_messages(2)
    assert [d.headers["x-twap-reason"] for d in dead] == ["unauthorized"] * 2


async def test_authz_on_control_needs_the_operator_role(harness: Harness, cli: Cli) -> None:
    worker = await harness.start_worker(authz="on")
    await harness.publish({"type": "kill_switch.engage", "reason": "not mine"},
                          queue=harness.names.control, user_id="guest")
    (dead,) = await harness.dlq_messages(1)
    assert dead.headers["x-twap-reason"] == "unauthorized"
    assert dead.headers["x-twap-errors"] == (
        "properties.user_id: user guest lacks the operator role required for "
        "kill_switch.engage")
    assert not (await worker.store.switches()).kill_switch_engaged
    refused = await cli("kill-switch", "engage", "--reason", "halt",
                        env={"TWAP_AUTHZ": "on"})
    assert refused.exit_code == 1
    # guest's password is its name: the CLI masks every occurrence of a password.
    assert refused.stderr == (
        "twap: user *** lacks the operator role required for kill_switch.engage "
        "(TWAP_AUTHZ=on); an operator can grant it with `twap grants set *** --operator`\n")
    await worker.store.set_grant(Grant.of("guest", [], [], True), by="test", reason=None,
                                 now=datetime.now(UTC))
    allowed = await cli("kill-switch", "engage", "--reason", "halt", env={"TWAP_AUTHZ": "on"})
    assert allowed.exit_code == 0, allowed.output
    limits = await cli("limits", "set", "alpha_1", "--max-open-parents", "2",
                       env={"TWAP_AUTHZ": "on"})
    assert limits.exit_code == 0, limits.output
    (changed,) = await worker.store.audit_history("limits", "alpha_1")
    assert (changed.changed_by, changed.new) == ("guest", {"max_open_parents": 2})


async def test_a_running_worker_blocks_slices_over_the_rate_past_the_grace(
        harness: Harness) -> None:
    """One slice a minute and a one-second grace: the first goes, the next two are
    blocked_risk with their events, and the parent completes with those tallies."""
    worker = await harness.start_worker(misfire_grace_seconds=1)
    await worker.store.set_limits("alpha_1", {"max_slices_per_minute": 1}, by="test",
                                  reason=None, now=datetime.now(UTC))
    cid = await harness.publish(submit_body(qty=3, duration_seconds=3, interval_seconds=1),
                                reply=True)
    pid = (await harness.reply_for(cid))["parent_order_id"]
    (done,) = await harness.events.wait_for(
        lambda: harness.events.of("parent.completed", parent_order_id=pid))
    assert done["by_status"]["filled"]["count"] == 1
    assert done["by_status"]["blocked_risk"]["count"] == 2
    blocked = harness.events.of("slice.blocked_risk", parent_order_id=pid)
    assert sorted(e["slice_num"] for e in blocked) == [1, 2]
    assert all(e["status"] == "blocked_risk" and e["reason"].startswith(
        "max_slices_per_minute 1 for strategy alpha_1 reached; its next turn (")
        for e in blocked)


async def test_a_notional_limit_prices_the_request_at_the_sim_brokers_own_quote(
        harness: Harness, cli: Cli) -> None:
    """No injected quotes: the running worker asks its broker (the sim, whose AAPL is 472.14
    by its name with a symmetric spread, so the mid is 472.14): 100 shares are 47,214, over a
    10,000 max_notional; 20 shares (9,442.80) pass."""
    await harness.start_worker()
    result = await cli("limits", "set", "alpha_1", "--max-notional", "10000", "--reason", "t")
    assert result.exit_code == 0, result.output
    refused = await harness.reply_for(await harness.publish(submit_body(qty=100), reply=True))
    assert refused["outcome"] == "rejected"
    (error,) = refused["errors"]
    assert error["loc"] == "qty"
    assert "(100 x 472.14) exceeds max_notional 10,000 for strategy alpha_1" in error["msg"]
    ok = await harness.reply_for(await harness.publish(submit_body(qty=20), reply=True))
    assert ok["outcome"] == "accepted"
