"""`twap status`, `twap list` and `twap watch` against a real worker and database."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.cli.conftest import Cli
from tests.support.harness import Harness, submit_body


async def completed_parent(harness: Harness, **overrides: object) -> str:
    await harness.start_worker()
    cid = await harness.publish(
        submit_body(duration_seconds=2, interval_seconds=1, qty=10, **overrides), reply=True
    )
    pid: str = (await harness.reply_for(cid))["parent_order_id"]
    await harness.events.wait_for(
        lambda: harness.events.of("parent.completed", parent_order_id=pid)
    )
    return pid


@pytest.mark.parametrize("db_kind", ["sqlite", "postgresql"])
async def test_status_shows_the_parent_and_its_slices(harness: Harness, cli: Cli) -> None:
    """status: the parent's fields and one row per slice, as plain text and as JSON."""
    pid = await completed_parent(harness)
    plain = await cli("status", pid)
    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    assert lines[0] == f"parent {pid}"
    assert "progress:     2/2 slices done, 10/10 shares sent" in lines
    # AAPL's sim price from its name, 472.14; the ask 2 bps wider, to the cent above
    assert "filled:       10/10 shares, avg price 472.19, 0 working, outcome filled" in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("#"))
    assert lines[header].split()[:7] == ["#", "qty", "due", "status", "filled", "avg", "price"]
    rows = lines[header + 1 :]
    assert [line.split()[0] for line in rows] == ["0", "1"]
    assert all(" filled  5       472.19 " in line for line in rows), rows
    data = await cli.json("status", pid)
    assert data["parent"]["status"] == "completed"
    assert [(s["slice_num"], s["qty"], s["status"]) for s in data["slices"]] == [
        (0, 5, "filled"),
        (1, 5, "filled"),
    ]
    assert all(s["broker_order_id"] and s["attempts"] == 1 for s in data["slices"])
    assert [s["filled_qty"] for s in data["slices"]] == [5, 5]
    assert (data["parent"]["filled_qty"], data["parent"]["outcome"]) == (10, "filled")
    assert Decimal(str(data["avg_fill_price"])) == Decimal("472.19")


async def test_status_of_an_unknown_parent_exits_4(cli: Cli) -> None:
    """An unknown parent id is one line on stderr and exit code 4."""
    result = await cli("status", "nope")
    assert (result.exit_code, result.stderr) == (4, "twap: unknown parent 'nope'\n")


@pytest.mark.parametrize("db_kind", ["sqlite", "postgresql"])
async def test_list_filters_and_shows_progress(harness: Harness, cli: Cli) -> None:
    """list: progress per parent; --strategy, --symbol and --active filter, --json for scripts."""
    pid = await completed_parent(harness, strategy_id="beta_2", symbol="MSFT")
    plain = await cli("list", "--strategy", "beta_2")
    assert plain.exit_code == 0, plain.output
    header, row = plain.stdout.strip().splitlines()
    assert header.split()[:5] == ["parent", "strategy", "symbol", "side", "status"]
    assert row.split()[:8] == [pid, "beta_2", "MSFT", "buy", "completed", "2/2", "10/10",
                               "10/10"]
    listed = await cli.json("list", "--symbol", "msft", "--since", "1h")
    assert [(p["parent_order_id"], p["done_slices"], p["sent_qty"], p["filled_qty"])
            for p in listed] == [(pid, 2, 10, 10)]
    assert await cli.json("list", "--active") == []
    assert (await cli("list", "--strategy", "nobody")).stdout == "no parents match\n"


async def test_list_rejects_a_bad_since(cli: Cli) -> None:
    """--since that is neither a duration nor a date is a usage error."""
    result = await cli("list", "--since", "yesterday")
    assert result.exit_code == 2
    assert "--since: 'yesterday' is neither a duration" in result.stderr


async def test_watch_exits_0_when_the_parent_completes(harness: Harness, cli: Cli) -> None:
    """watch of a running parent reads its state, follows events and exits 0 on completion."""
    await harness.start_worker()
    cid = await harness.publish(
        submit_body(duration_seconds=3, interval_seconds=1, qty=9), reply=True
    )
    pid = (await harness.reply_for(cid))["parent_order_id"]
    result = await cli("watch", pid)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == (
        "completed: 3/3 slices submitted, 9/9 shares sent, 9/9 filled, avg price 472.19, "
        "outcome filled"
    )
    # Each fill shows filled shares next to sent.
    fills = [line for line in lines if " fill 3 at 472.19; " in line]
    assert [line.split("; ")[1] for line in fills][-1] == "9/9 shares filled, 9/9 sent"


async def test_watch_exits_1_for_a_canceled_parent(harness: Harness, cli: Cli) -> None:
    """watch of a canceled parent prints why and exits non-zero."""
    await harness.start_worker()
    cid = await harness.publish(submit_body(duration_seconds=3600, interval_seconds=60), reply=True)
    pid = (await harness.reply_for(cid))["parent_order_id"]
    # The first slice (2 of 103 shares over 60 slices) is due at once: let it fill first.
    await harness.events.wait_for(lambda: harness.events.of("slice.filled", parent_order_id=pid))
    await harness.publish({"type": "cancel", "parent_order_id": pid, "reason": "desk"})
    await harness.events.wait_for(lambda: harness.events.of("parent.canceled", parent_order_id=pid))
    result = await cli("watch", pid, "--json")
    assert result.exit_code == 1
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["status"] == "canceled"
    assert (last["filled_qty"], last["avg_fill_price"], last["outcome"]) == (2, "472.19", None)


async def test_parent_ids_complete_from_the_database(harness: Harness, cli: Cli) -> None:
    """Shell completion of PARENT_ID offers the parent ids that start with what was typed."""
    pid = await completed_parent(harness)
    env = {
        "_TWAP_COMPLETE": "complete_bash",
        "COMP_WORDS": f"twap status {pid[:6]}",
        "COMP_CWORD": "2",
    }
    result = await cli(env=env)
    assert result.stdout.split() == [pid]
