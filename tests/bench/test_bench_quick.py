"""Every benchmark still runs: `python -m bench <name> --quick` against the local services.

Only that it works and prints its JSON line, with figures that agree with each other, is
checked, never a timing or a target (machines are noisy). So the runs here shrink `--quick`
further with `--set` (SMALLER): fewer parents, shorter steps, windows, leads and settles, the
same code paths (soak still fits its slope over rounds 2..N). `--quick` alone keeps its
counts for a person who wants rough figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import BENCHMARKS

pytestmark = [pytest.mark.bench, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
KEYS = {
    "name",
    "database",
    "quick",
    "counts",
    "rates",
    "percentiles",
    "rss_mib",
    "timings_s",
    "targets",
    "all_targets_met",
    "machine",
    "floor_per_s",
    "ratio_to_floor",
    "floor",
    "details",
}
# Per benchmark, what the tests set on top of --quick (parameter names of its Params).
SMALLER: dict[str, dict[str, str]] = {
    "intake": {"requests": "300"},
    "capacity": {"parents": "300", "settle_seconds": "1.0"},
    # At most three steps of 2 s (one parent per slice/s, one slice a second), due 0.5 s
    # after their publish (plus 1 s per 200 parents): a passed step doubles, a failed one
    # halves or bisects on a fresh worker and database, as in a longer search.
    "dispatch": {
        "step_seconds": "2",
        "step_slices": "2",
        "max_steps": "3",
        "lead_seconds": "0.5",
        "floor_updates": "300",
    },
    "overload": {"seconds": "4", "slices": "4", "lead_seconds": "0.5"},
    "recovery": {"parents": "300", "down_after_due": "0.5"},
    "cancel": {"parents": "10", "slices": "300"},
    # Three rounds: the least rounds that give a fitted slope (rounds 2..N, two points).
    "soak": {"rounds": "3", "parents": "100", "settle_seconds": "0.5"},
}


def smaller(name: str, **extra: str) -> dict[str, str]:
    """SMALLER[name] with `extra` on top, every key a parameter the benchmark has (its
    `--set` ignores other keys, so a misspelt one would change nothing unseen)."""
    settings = {**SMALLER[name], **extra}
    known = {f.name for f in dataclasses.fields(BENCHMARKS[name].QUICK)}
    assert settings.keys() <= known, f"not parameters of {name}: {settings.keys() - known}"
    return settings


def run_quick(name: str, amqp_url: str, database_url: str | None, **extra: str) -> dict[str, Any]:
    settings = smaller(name, **extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWAP_")}
    env["TWAP_AMQP_URL"] = amqp_url
    if database_url is not None:
        env["TWAP_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            name,
            "--quick",
            *(f"--set={k}={v}" for k, v in settings.items()),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) > 1, "a readable summary comes before the JSON line"
    return dict(json.loads(lines[-1]))


def database_url(database: str, request: pytest.FixtureRequest) -> str | None:
    """None for a fresh SQLite file; the PostgreSQL server's URL (the benchmark creates its own
    database there)."""
    return str(request.getfixturevalue("pg_admin_url")) if database == "postgresql" else None


def assert_ratio_to_floor(figures: dict[str, Any], measured: float) -> None:
    """The floor was measured in this run and the ratio is the figure over it."""
    floor = figures["floor"]
    assert floor["applies"] is True and floor["what"]
    assert figures["floor_per_s"] == floor["per_s"] == min(floor["parts"].values()) > 0
    expected = measured / figures["floor_per_s"]
    assert figures["ratio_to_floor"] == pytest.approx(expected, rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("name", ["capacity", "recovery", "cancel", "soak"])
def test_quick_run_on_sqlite_prints_its_figures(name: str, amqp_url: str) -> None:
    """Each benchmark with an absolute target runs on the embedded default, ends with a JSON
    line of its figures, and says why no floor applies."""
    figures = run_quick(name, amqp_url, None)
    assert KEYS <= figures.keys()
    assert (figures["name"], figures["database"], figures["quick"]) == (name, "sqlite", True)
    assert figures["counts"] and figures["targets"]
    assert figures["rss_mib"]["rss"] > 0
    assert figures["floor_per_s"] is None and figures["ratio_to_floor"] is None
    assert figures["floor"]["applies"] is False and figures["floor"]["why"]
    if name == "soak":  # its figure: RSS growth per 1,000 completed parents, fitted
        assert {"kib_per_1000_parents", "kib_per_1000_parents_second_half"} \
            <= figures["rates"].keys()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_quick_intake_reports_its_rate_against_the_floor(
    database: str, amqp_url: str, request: pytest.FixtureRequest
) -> None:
    """intake measures its floor (rows written, or requests consumed) in the same run and
    prints requests/s as a ratio to it."""
    figures = run_quick("intake", amqp_url, database_url(database, request))
    assert KEYS <= figures.keys()
    assert (figures["name"], figures["database"]) == ("intake", database)
    requests = int(SMALLER["intake"]["requests"])
    assert figures["counts"]["accepted"] == figures["counts"]["requests"] == requests
    assert figures["floor"]["count"] == requests
    assert set(figures["floor"]["parts"]) == {
        "db_copy_requests_per_s" if database == "postgresql" else "db_executemany_requests_per_s",
        "amqp_consume_ack_per_s",
    }
    assert_ratio_to_floor(figures, figures["rates"]["requests_per_s"])


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_quick_dispatch_searches_the_sustained_rate(
    database: str, amqp_url: str, request: pytest.FixtureRequest
) -> None:
    """dispatch searches the highest rate with lateness p99 <= 50 ms and none missed, in a
    bounded number of steps, and prints it as a ratio to the single-row UPDATE floor."""
    figures = run_quick("dispatch", amqp_url, database_url(database, request))
    assert KEYS <= figures.keys()
    assert (figures["name"], figures["database"]) == ("dispatch", database)
    steps = figures["details"]["steps"]
    assert 1 <= len(steps) == figures["counts"]["steps"] <= int(SMALLER["dispatch"]["max_steps"])
    for step in steps:
        assert step["sent"] + step["missed"] == step["slices_due"] > 0
        if step["sustained"]:
            assert step["missed"] == step["problems"] == 0 and step["p99_ms"] <= 50
            # The sim fills a market slice whole at once: one fill and one filled event each.
            assert step["fill_events"] == step["filled_events"] == step["sent"]
            assert step["fill_p99_ms"] is not None
    passed = [s["rate"] for s in steps if s["sustained"]]
    sustained = figures["rates"]["sustained_slices_per_s"]
    assert sustained == max(passed, default=0)
    if sustained:
        assert figures["rates"]["offered_slices_per_s"] == sustained
        assert "lateness_ms" in figures["percentiles"]
        counts = figures["counts"]
        assert counts["fill_events"] == counts["filled_events"] == counts["sent"]
        assert counts["slices_with_fill"] == counts["sent"]
        fill = figures["percentiles"]["due_to_fill_event_ms"]
        # A fill event comes after the broker received the order.
        assert fill["p50"] <= fill["p99"]
        assert fill["min"] >= figures["percentiles"]["lateness_ms"]["min"]
    assert_ratio_to_floor(figures, sustained)


def test_quick_overload_ends_every_slice(amqp_url: str) -> None:
    """overload offers twice the given sustained rate and accounts for every slice: each one
    terminal with its event, counted by outcome, tracebacks in the worker's log counted."""
    figures = run_quick("overload", amqp_url, None, rate="60")
    assert KEYS <= figures.keys()
    counts = figures["counts"]
    assert (counts["sustained_slices_per_s"], counts["offered_slices_per_s"]) == (60, 120)
    assert counts["slices_due"] > 0
    assert counts["terminal"] + counts["non_terminal"] == counts["slices_due"]
    assert counts["non_terminal"] == 0
    outcomes = {"filled", "closed", "expired", "failed", "rejected", "canceled"}
    outcomes |= {"blocked_kill_switch"}
    outcomes |= {"blocked_circuit_breaker"}
    assert sum(counts.get(o, 0) for o in outcomes) == counts["terminal"]
    assert counts["sent_in_window"] <= counts["sent"] <= counts["slices_due"]
    assert counts["traceback_lines"] >= sum(t["count"] for t in figures["details"]["tracebacks"])
    assert sum(figures["details"]["expired_reasons"].values()) <= counts["expired"]
    throughput = figures["rates"]["throughput_slices_per_s"]
    share = figures["rates"]["throughput_pct_of_sustained"]
    assert share == pytest.approx(100 * throughput / 60, abs=0.2)
    assert figures["details"]["sustained_from"] == "argument"
    assert_ratio_to_floor(figures, throughput)
