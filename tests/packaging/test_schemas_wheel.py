"""The wire contract as its own distribution: the twap-schemas wheel carries the models alone,
installs where only pydantic is, and validates what a strategy publishes there."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.packaging.installed import SCHEMAS, clean_env, run
from tests.support.harness import submit_body

pytestmark = pytest.mark.integration

# Run inside the pydantic-only virtualenv: every module imports, a submit validates, a bad one
# names its field, and nothing of the worker or its other dependencies is importable.
STRATEGY = """
import importlib, importlib.util, json, pkgutil, sys
import pydantic, twap_schemas
from twap_schemas.parse import InvalidMessage, parse_request
from twap_schemas.requests import SubmitRequest

modules = [m.name for m in pkgutil.walk_packages(twap_schemas.__path__, "twap_schemas.")]
for name in modules:
    importlib.import_module(name)
body = json.loads(sys.argv[1])
request = SubmitRequest.model_validate(body)
parsed = parse_request(json.dumps(body).encode())
try:
    SubmitRequest.model_validate({**body, "qty": 0})
    bad = None
except pydantic.ValidationError as exc:
    bad = [".".join(map(str, e["loc"])) for e in exc.errors()]
absent = ("worker", "schemas", "aio_pika", "sqlalchemy")
present = [n for n in absent if importlib.util.find_spec(n)]
print(json.dumps({
    "modules": sorted(modules), "file": twap_schemas.__file__, "symbol": request.symbol,
    "qty": parsed.qty, "bad": bad, "importable": present,
}))
"""


def top_levels(wheel: Path) -> set[str]:
    return {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}


def pydantic_only(into: Path) -> Path:
    """A folder with pydantic and the distributions it needs (no extras), linked from this
    environment: what `pip install pydantic` would give a strategy, and nothing else."""
    into.mkdir()
    todo, seen = ["pydantic"], set()
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        if canonicalize_name(dist.metadata["Name"]) in seen:
            continue
        seen.add(canonicalize_name(dist.metadata["Name"]))
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
        for top in {Path(f).parts[0] for f in dist.files or [] if Path(f).parts[0] != ".."}:
            link = into / top
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))
    assert {"pydantic", "pydantic-core"} <= seen
    return into


def test_schemas_wheel_carries_the_models_and_needs_only_pydantic(schemas_wheel: Path) -> None:
    """Every module of schemas/twap_schemas and py.typed are in the wheel; it requires pydantic
    at the worker's range, and nothing else."""
    names = set(zipfile.ZipFile(schemas_wheel).namelist())
    package = SCHEMAS / "twap_schemas"
    sources = {f"twap_schemas/{p.name}" for p in package.iterdir() if p.suffix == ".py"}
    assert "twap_schemas/requests.py" in sources
    assert sources | {"twap_schemas/py.typed"} <= names
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(schemas_wheel).read(metadata).decode()
    requires = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    worker = tomllib.loads((SCHEMAS.parent / "pyproject.toml").read_text())["project"]
    pydantic = [r for r in worker["dependencies"] if Requirement(r).name == "pydantic"]
    assert [Requirement(r) for r in requires] == [Requirement(r) for r in pydantic]


def test_no_wheel_has_a_top_level_schemas_package(wheel: Path, schemas_wheel: Path) -> None:
    """The worker's wheel holds `worker` only, twap-schemas' `twap_schemas` only: the generic
    name `schemas` is installed by neither."""
    assert {t for t in top_levels(wheel) if not t.endswith(".dist-info")} == {"worker"}
    assert {t for t in top_levels(schemas_wheel) if not t.endswith(".dist-info")} == {
        "twap_schemas"
    }


def test_schemas_wheel_alone_validates_a_submit_beside_only_pydantic(
    schemas_wheel: Path, tmp_path: Path
) -> None:
    """In a fresh virtualenv holding only pydantic, pip installs the twap-schemas wheel (its
    dependencies found there, no index); a strategy then imports every module, validates a
    submit and gets a bad qty named; the worker and its other dependencies stay absent."""
    home = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", home], cwd=tmp_path)
    python = home / "bin" / "python"
    site = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
    ).stdout.strip()
    Path(site, "pydantic_only.pth").write_text(f"{pydantic_only(tmp_path / 'pydantic')}\n")
    env = {k: v for k, v in clean_env(tmp_path).items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no index, link folder or constraints from a config
    # This environment's pip, run for that interpreter: it sees that interpreter's packages.
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-index"]
    run([*install, "--quiet", schemas_wheel], cwd=tmp_path, env=env)
    installed = sorted(p.name for p in Path(site).iterdir() if p.name != "__pycache__")
    assert [n for n in installed if not n.endswith(".dist-info")] == [
        "pydantic_only.pth",
        "twap_schemas",
    ]

    body = submit_body(symbol="msft", qty=7)
    out = run([python, "-c", STRATEGY, json.dumps(body)], cwd=tmp_path, env=clean_env(tmp_path))
    found = json.loads(out.stdout)
    package = SCHEMAS / "twap_schemas"
    assert found["modules"] == sorted(
        f"twap_schemas.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"
    )
    assert found["file"].startswith(site), found["file"]
    assert (found["symbol"], found["qty"]) == ("MSFT", 7)
    assert found["bad"] == ["qty"]
    assert found["importable"] == []


def test_exporter_refuses_to_write_from_an_installed_wheel(venv: Path, tmp_path: Path) -> None:
    """`python -m twap_schemas.export` outside a clone exits 2 naming why, and writes nothing."""
    done = run(
        [venv / "python", "-m", "twap_schemas.export"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a clone of the repository" in done.stderr
    where = [venv / "python", "-c", "import twap_schemas as t; print(t.__file__)"]
    package = Path(run(where, cwd=tmp_path, env=clean_env(tmp_path)).stdout.strip())
    root = package.parents[2]  # what the exporter takes for the clone
    assert not (root / "schemas").exists() and not (root / "docs").exists()
