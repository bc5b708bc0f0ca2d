"""The project as a user gets it: the sdists and the wheels built from them (the worker's, and
twap-schemas' from schemas/), the wheels installed in a fresh virtualenv, and commands run there
with a clean environment.

Built offline with this environment's setuptools; the virtualenv takes its dependencies from
this environment through a .pth line, so no package index is needed and nothing from the
repository is importable there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"  # the twap-schemas distribution's project folder
TIMEOUT = 120


def run(
    args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if check:
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done


def build_wheel(out: Path, project: Path = ROOT) -> Path:
    """The project's wheel, built from its sdist as a release would be (so the sdist must be
    complete), alone in `out`."""
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, project], cwd=ROOT)
    (found,) = out.glob("*.whl")
    return found


def install_in_fresh_venv(wheels: list[Path], home: Path) -> Path:
    """A new virtualenv at `home` with the wheels installed (not editable); returns its bin/."""
    run([sys.executable, "-m", "venv", "--without-pip", home], cwd=home)
    python = home / "bin" / "python"
    site = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=home
    ).stdout.strip()
    # A .pth line only extends sys.path, after the venv's own site-packages: this environment's
    # own .pth files (its editable install of the project) do not run there.
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    Path(site, "dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", *wheels], cwd=home)
    return home / "bin"


def clean_env(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without TWAP_* and PYTHONPATH, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWAP_") and k != "PYTHONPATH"}
    env.update({"HOME": str(home), **settings})
    return env
