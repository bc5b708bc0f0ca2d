"""Node.js projects the tests run (examples/node, tools/asyncapi): installed from their lockfile.

Locally a missing node/npm skips the test; with CI=true it fails the run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import services


def npm_installed(directory: Path, why_required: str) -> str:
    """`npm ci` in `directory` unless node_modules already matches its lockfile; returns node."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        services.unavailable("node/npm not found on PATH", why_required)
    assert node is not None and npm is not None
    marker = directory / "node_modules" / ".package-lock.json"
    lock = directory / "package-lock.json"
    if not marker.is_file() or marker.stat().st_mtime < lock.stat().st_mtime:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            services.unavailable(f"npm ci failed: {done.stderr.strip()[-500:]}", why_required)
    return node
