"""A wheel installed away from the repository migrates both databases and runs `twap`.

The sdist and the wheel are built offline with this environment's setuptools; the wheel goes
into a fresh virtualenv whose dependencies come from this environment (a .pth line), so no
package index is needed and nothing from the repository is importable there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support.databases import PgDatabases
from worker.store.engine import make_engine
from worker.store.migrations import current_revision, head_revision

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SOURCE_MIGRATIONS = ROOT / "alembic"
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from the sdist as a release would be (so the sdist must carry alembic/)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=ROOT)
    (found,) = out.glob("twap_worker-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed (not editable); returns its bin folder."""
    home = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", home], cwd=home)
    python = home / "bin" / "python"
    site = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=home
    ).stdout.strip()
    # A .pth line only extends sys.path, after the venv's own site-packages: this environment's
    # own .pth files (its editable install of the project) do not run there.
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    Path(site, "dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel], cwd=home)
    return home / "bin"


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This process's environment without TWAP_* and PYTHONPATH, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWAP_") and k != "PYTHONPATH"}
    env.update({"HOME": str(tmp_path), **settings})
    return env


def test_wheel_carries_every_module_and_the_migrations(wheel: Path) -> None:
    """Every source module, env.py, the mako template and each revision are in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    roots = {name.split(".")[0] for name in listed}
    sources = {p.relative_to(ROOT).as_posix() for d in roots for p in (ROOT / d).rglob("*.py")}
    migrations = {
        f"worker/store/alembic/{p.relative_to(SOURCE_MIGRATIONS).as_posix()}"
        for p in SOURCE_MIGRATIONS.rglob("*")
        if p.suffix in {".py", ".mako"}
    }
    assert {"worker/store/alembic/env.py", "worker/store/alembic/script.py.mako"} < migrations
    assert sources - names == set()
    assert migrations - names == set()


def test_installed_package_runs_from_site_packages(venv: Path, tmp_path: Path) -> None:
    """The venv imports the worker and finds its migrations in its own site-packages."""
    code = (
        "import worker, worker.store.migrations as m; "
        "print(worker.__file__); print(m.script_location())"
    )
    out = run([venv / "python", "-c", code], cwd=tmp_path, env=clean_env(tmp_path)).stdout
    module, scripts = out.split()
    prefix = str(venv.parent)
    assert module.startswith(prefix) and "site-packages" in module, module
    assert scripts.startswith(prefix) and scripts.endswith("worker/store/alembic"), scripts


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_twap_migrate_from_the_wheel(
    kind: str, venv: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`twap migrate` of the installed wheel brings a fresh database to the source's head."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    else:
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        url = await databases.new(migrated=False)
    done = run(
        [venv / "twap", "migrate"], cwd=tmp_path, env=clean_env(tmp_path, TWAP_DATABASE_URL=url)
    )
    assert "is at head" in done.stdout
    engine = make_engine(url)
    try:
        assert await current_revision(engine) == head_revision(url)
    finally:
        await engine.dispose()


def test_worker_start_up_check_reads_the_packaged_revisions(venv: Path, tmp_path: Path) -> None:
    """`twap worker` on an empty database refuses, naming the head its packaged scripts give."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    env = clean_env(
        tmp_path,
        TWAP_DATABASE_URL=url,
        TWAP_HTTP_PORT="0",
        TWAP_AMQP_URL="amqp://guest:guest@127.0.0.1:1/",
    )
    done = run([venv / "twap", "worker"], cwd=tmp_path, env=env, check=False)
    assert done.returncode != 0
    assert f"the worker needs {head_revision(url)}: run `twap migrate` first" in done.stderr


def test_twap_worker_help_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    """`twap worker --help` works in the installed wheel."""
    done = run([venv / "twap", "worker", "--help"], cwd=tmp_path, env=clean_env(tmp_path))
    assert "Usage: twap worker" in done.stdout


def test_alembic_cli_from_the_clone_still_works(tmp_path: Path) -> None:
    """`alembic upgrade head` in a clone uses alembic.ini and the top-level alembic/ folder."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = clean_env(tmp_path, TWAP_DATABASE_URL=url)
    run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env)
    current = run([sys.executable, "-m", "alembic", "current"], cwd=ROOT, env=env).stdout
    assert current.split() == [head_revision(url), "(head)"]
