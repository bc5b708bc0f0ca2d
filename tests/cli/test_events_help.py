"""`twap events` as a real process, --help on every command, shell completion."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.cli.conftest import Cli
from tests.support.harness import Harness, submit_body
from worker.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


def every_command(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for info in group.registered_commands:
        assert info.callback is not None
        found.append((*prefix, info.name or info.callback.__name__))
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name is not None
        found += every_command(sub.typer_instance, (*prefix, sub.name))
    return found


async def test_events_tails_live_events_as_json_lines(harness: Harness, cli: Cli) -> None:
    """events --json prints one event per line, filtered by strategy, as they happen."""
    await harness.start_worker()
    env = {**os.environ, **cli.env, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "events",
        "--json",
        "--strategy",
        "ev_1",
        "--count",
        "2",
        "--timeout",
        "60s",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    listening = await asyncio.wait_for(process.stderr.readline(), 30)
    assert listening.decode().startswith(f"listening on {harness.names.events}")
    await harness.publish(submit_body(strategy_id="other"))
    await harness.publish(submit_body(strategy_id="ev_1", duration_seconds=2))
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert events[0]["event_type"] == "parent.accepted"
    assert {e["strategy_id"] for e in events} == {"ev_1"}


@pytest.mark.parametrize("command", every_command(app), ids=" ".join)
def test_every_command_has_help_with_an_example(command: tuple[str, ...]) -> None:
    """--help works on every command and shows at least one example."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_shell_completion_offers_commands_and_choices() -> None:
    """The completion hook (what --install-completion installs) completes names and choices."""

    def complete(words: str) -> list[str]:
        env = {
            "_TWAP_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        return CliRunner().invoke(app, [], env=env).output.split()

    assert complete("twap dl") == ["dlq"]
    assert complete("twap submit --side ") == ["buy", "sell"]
    assert "replay" in complete("twap dlq ")
