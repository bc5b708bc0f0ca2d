"""`twap worker` start-up checks, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SECRET = "very-secret-value-123"


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TWAP_", "ALPACA_", "APCA_"))}
    return subprocess.run([sys.executable, "-m", "worker", *args], env={**clean, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=60)


def test_alpaca_without_credentials_exits_at_once_naming_the_variables(tmp_path: Path) -> None:
    """TWAP_BROKER=alpaca with no secret: exit 2 with one line naming what is missing."""
    result = run(["worker"], {"TWAP_BROKER": "alpaca", "ALPACA_API_KEY": SECRET}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ALPACA_SECRET_KEY" in lines[0] and "APCA_API_SECRET_KEY" in lines[0]
    assert SECRET not in result.stderr + result.stdout


def test_help_never_shows_credentials(tmp_path: Path) -> None:
    """`twap worker --help` documents the settings but prints no secret from the environment."""
    result = run(["worker", "--help"], {"ALPACA_API_KEY": SECRET, "ALPACA_SECRET_KEY": SECRET,
                                        "TWAP_AMQP_URL": f"amqp://u:{SECRET}@h/"}, tmp_path)
    assert result.returncode == 0
    assert "TWAP_MISFIRE_GRACE_SECONDS" in result.stdout and "ALPACA_API_KEY" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_worker_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    """A database without the schema: one line telling the user to run `twap migrate`."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    result = run(["worker"], {"TWAP_DATABASE_URL": url, "TWAP_HTTP_PORT": "0"}, tmp_path)
    assert result.returncode == 2
    assert "twap migrate" in result.stderr
