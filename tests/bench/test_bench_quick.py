"""Every benchmark still runs: `python -m bench <name> --quick` against the local services.

Only that it works and prints its JSON line is checked, never a timing (machines are noisy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
}


def run_quick(name: str, amqp_url: str, database_url: str | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWAP_")}
    env["TWAP_AMQP_URL"] = amqp_url
    if database_url is not None:
        env["TWAP_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "bench", name, "--quick"],
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


@pytest.mark.parametrize("name", ["intake", "capacity", "dispatch", "recovery", "cancel", "soak"])
def test_quick_run_on_sqlite_prints_its_figures(name: str, amqp_url: str) -> None:
    """Each benchmark runs on the embedded default and ends with a JSON line of its figures."""
    figures = run_quick(name, amqp_url, None)
    assert KEYS <= figures.keys()
    assert (figures["name"], figures["database"], figures["quick"]) == (name, "sqlite", True)
    assert figures["counts"] and figures["targets"]
    assert figures["rss_mib"]["rss"] > 0
    if name == "soak":  # its figure: RSS growth per 1,000 completed parents, fitted
        assert "kib_per_1000_parents" in figures["rates"]


def test_quick_dispatch_on_postgresql_prints_its_figures(amqp_url: str, pg_admin_url: str) -> None:
    """The dispatch benchmark runs on a fresh PostgreSQL database of its own."""
    figures = run_quick("dispatch", amqp_url, pg_admin_url)
    assert KEYS <= figures.keys()
    assert (figures["name"], figures["database"]) == ("dispatch", "postgresql")
    assert figures["counts"]["slices_due"] > 0
    assert "lateness_ms" in figures["percentiles"]
