"""`twap submit` and `twap cancel` through the real CLI, worker, RabbitMQ and database."""

from __future__ import annotations

from tests.cli.conftest import Cli, depth
from tests.support.harness import Harness

SUBMIT = ("submit", "--strategy", "alpha_1", "--symbol", "AAPL", "--side", "buy")


async def test_submit_prints_parent_id_from_reply(harness: Harness, cli: Cli) -> None:
    """The parent id printed is the one the worker accepted, recorded as submitted by our user."""
    await harness.start_worker()
    result = await cli(*SUBMIT, "--qty", "103", "--duration", "1h", "--interval", "60s", "-q")
    assert result.exit_code == 0, result.output
    pid = result.stdout.strip()
    accepted = await harness.events.wait_for(
        lambda: harness.events.of("parent.accepted", parent_order_id=pid)
    )
    assert accepted[0]["total_slices"] == 60
    assert harness.worker is not None
    parent = await harness.worker.store.get_parent(pid)
    assert parent is not None and parent.submitted_by == "guest"


async def test_submit_with_broken_rules_names_them_and_publishes_nothing(
    harness: Harness, cli: Cli
) -> None:
    """Every broken rule is printed with its flag, exit 2, and nothing reaches the queue."""
    result = await cli(*SUBMIT, "--qty", "0", "--duration", "5m", "--order-type", "limit")
    assert result.exit_code == 2
    assert "--qty: Input should be greater than or equal to 1" in result.stderr
    assert "--limit-price: required when order_type is limit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert await depth(harness, harness.names.requests) == 0


async def test_submit_plan_error_uses_the_workers_planning(cli: Cli) -> None:
    """A request that cannot be sliced (3 shares over 5 slices) is refused like the worker does."""
    result = await cli(*SUBMIT, "--qty", "3", "--duration", "5s", "--interval", "1s")
    assert result.exit_code == 2
    assert "--qty: 3 is less than the slice count 5" in result.stderr


async def test_submit_limit_follows_this_environment(cli: Cli) -> None:
    """The configured maximum quantity (TWAP_MAX_QTY) applies before anything is published."""
    result = await cli(*SUBMIT, "--qty", "500", "--duration", "5m", env={"TWAP_MAX_QTY": "100"})
    assert result.exit_code == 2
    assert "--qty: must be at most 100 (configured maximum)" in result.stderr


async def test_submit_bad_duration_is_refused(cli: Cli) -> None:
    """A duration that does not parse is a usage error naming the flag."""
    result = await cli(*SUBMIT, "--qty", "10", "--duration", "30x")
    assert result.exit_code == 2
    assert "--duration: '30x' is not a duration" in result.stderr


async def test_submit_without_a_worker_publishes_nothing(harness: Harness, cli: Cli) -> None:
    """With no consumer on N.requests the CLI says so, exits 1 and leaves the queue empty."""
    result = await cli(*SUBMIT, "--qty", "10", "--duration", "5m")
    assert result.exit_code == 1
    assert f"no worker is consuming {harness.names.requests}" in result.stderr
    assert await depth(harness, harness.names.requests) == 0


async def test_submit_watch_follows_to_completion(harness: Harness, cli: Cli) -> None:
    """--watch prints the accepted parent, each slice, and exits 0 once it completed."""
    await harness.start_worker()
    result = await cli(*SUBMIT, "--qty", "10", "--duration", "2s", "--interval", "1s", "--watch")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("accepted ")
    assert lines[-1] == (
        "completed: 2/2 slices submitted, 10/10 shares sent, 10/10 filled, avg price 472.19, "
        "outcome filled"
    )


async def test_cancel_stops_the_remaining_slices(harness: Harness, cli: Cli) -> None:
    """cancel answers how many slices it canceled; the parent is canceled in the database."""
    await harness.start_worker()
    submitted = await cli(*SUBMIT, "--qty", "100", "--duration", "1h", "-q")
    pid = submitted.stdout.strip()
    result = await cli("cancel", pid, "--reason", "desk request")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"canceled {pid}: ")
    status = await cli.json("status", pid)
    assert status["parent"]["status"] == "canceled"
    assert status["cancel_reason"] == "desk request"
    assert {s["status"] for s in status["slices"][1:]} == {"canceled"}


async def test_cancel_of_an_unknown_parent_exits_4(harness: Harness, cli: Cli) -> None:
    """The worker's 'unknown parent' rejection is one line and exit code 4."""
    await harness.start_worker()
    result = await cli("cancel", "0123456789abcdef01234567")
    assert result.exit_code == 4
    assert "unknown parent '0123456789abcdef01234567'" in result.stderr
