"""A wheel installed away from the repository migrates both databases and runs `twap`."""

from __future__ import annotations

import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.packaging.installed import ROOT, clean_env, run
from tests.support.databases import PgDatabases
from worker.store import migrations
from worker.store.engine import make_engine
from worker.store.migrations import MigrationsMissing, current_revision, head_revision

pytestmark = pytest.mark.integration

SOURCE_MIGRATIONS = ROOT / "alembic"


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
    """The venv imports the worker and twap_schemas and finds the migrations in its own
    site-packages; no top-level `schemas` is importable there."""
    code = (
        "import importlib.util, twap_schemas, worker, worker.store.migrations as m; "
        "print(worker.__file__); print(twap_schemas.__file__); print(m.script_location()); "
        "print(importlib.util.find_spec('schemas'))"
    )
    out = run([venv / "python", "-c", code], cwd=tmp_path, env=clean_env(tmp_path)).stdout
    module, contract, scripts, old_name = out.split()
    prefix = str(venv.parent)
    for path in (module, contract):
        assert path.startswith(prefix) and "site-packages" in path, path
    assert scripts.startswith(prefix) and scripts.endswith("worker/store/alembic"), scripts
    assert old_name == "None"


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


def test_missing_scripts_are_named_not_taken_from_the_alembic_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without env.py in either place, the error names both; the Alembic library is no candidate."""
    import alembic

    monkeypatch.setattr(migrations, "PACKAGED", tmp_path / "worker" / "store" / "alembic")
    monkeypatch.setattr(migrations, "CLONE", Path(alembic.__file__).parent)
    with pytest.raises(MigrationsMissing, match="no migration scripts") as raised:
        migrations.script_location()
    assert str(tmp_path) in str(raised.value)
