"""`twap kill-switch` and `twap breaker`: changes through N.control, status from the database."""

from __future__ import annotations

from tests.cli.conftest import Cli
from tests.support.harness import Harness, submit_body


async def test_kill_switch_engage_stops_a_running_twap(harness: Harness, cli: Cli) -> None:
    """After engage, every remaining slice of a running TWAP is blocked_kill_switch."""
    await harness.start_worker()
    cid = await harness.publish(
        submit_body(duration_seconds=8, interval_seconds=2, qty=40), reply=True
    )
    pid = (await harness.reply_for(cid))["parent_order_id"]
    await harness.events.wait_for(lambda: harness.events.of("slice.submitted", parent_order_id=pid))
    result = await cli("kill-switch", "engage", "--reason", "desk halt", "--operator", "ops_1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "kill switch engaged: desk halt (by ops_1)\n"
    await harness.events.wait_for(
        lambda: harness.events.of("parent.completed", parent_order_id=pid), timeout=30
    )
    statuses = [s["status"] for s in (await cli.json("status", pid))["slices"]]
    assert statuses[0] == "submitted"
    assert statuses[-1] == "blocked_kill_switch"
    first_blocked = statuses.index("blocked_kill_switch")
    assert set(statuses[first_blocked:]) == {"blocked_kill_switch"}
    state = await cli.json("kill-switch", "status")
    assert (state["state"], state["reason"], state["operator"]) == ("engaged", "desk halt", "ops_1")


async def test_breaker_trip_status_reset(harness: Harness, cli: Cli) -> None:
    """breaker status reads the database; trip and reset go through the worker and show there."""
    await harness.start_worker()
    before = await cli.json("breaker", "status")
    assert (before["state"], before["consecutive_failures"]) == ("reset", 0)
    tripped = await cli("breaker", "trip", "--reason", "broker flaky")
    assert tripped.exit_code == 0, tripped.output
    state = await cli.json("breaker", "status")
    assert (state["state"], state["reason"], state["automatic"]) == (
        "tripped",
        "broker flaky",
        False,
    )
    assert state["operator"]  # the current user by default
    assert (await cli("breaker", "reset")).exit_code == 0
    plain = await cli("breaker", "status")
    assert "state:                reset" in plain.stdout.splitlines()


async def test_engage_requires_a_reason(cli: Cli) -> None:
    """kill-switch engage without --reason is a usage error (exit 2)."""
    result = await cli("kill-switch", "engage")
    assert result.exit_code == 2
    assert "--reason" in result.output


async def test_engage_without_a_worker_says_it_is_queued(harness: Harness, cli: Cli) -> None:
    """With no worker, engage publishes, then says nobody applied it yet (exit 1)."""
    result = await cli("kill-switch", "engage", "--reason", "x", "--timeout", "1s")
    assert result.exit_code == 1
    assert "no worker is consuming it; it applies when one starts" in result.stderr
