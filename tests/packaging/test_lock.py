"""requirements.lock (the image's dependencies) pins every package with hashes and satisfies
what pyproject.toml asks for, so a forgotten `make lock` fails here rather than in a build."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.packaging.installed import ROOT

LOCK = ROOT / "requirements.lock"
# The image: CPython 3.11 on Linux (the lock itself is resolved for every platform).
IMAGE = {
    "python_version": "3.11",
    "python_full_version": "3.11.14",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}


def entries() -> list[tuple[str, str, Marker | None, list[str]]]:
    """(name, version, marker, hashes) of every requirement in the lock."""
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        requirement = Requirement(re.sub(r"\s*--hash=\S+", "", line))
        pins = [s for s in requirement.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(requirement.specifier) == 1, line
        found.append((requirement.name, pins[0].version, requirement.marker, hashes))
    return found


def for_image() -> dict[str, Version]:
    env: dict[str, Any] = IMAGE
    return {
        canonicalize_name(name): Version(version)
        for name, version, marker, _ in entries()
        if marker is None or marker.evaluate(env)
    }


def test_every_package_is_pinned_with_hashes() -> None:
    """Each line pins one exact version and carries at least one sha256 hash."""
    found = entries()
    assert len(found) > 20
    assert all(hashes for *_, hashes in found), [name for name, *_, h in found if not h]


def pyproject(path: str = "pyproject.toml") -> dict[str, Any]:
    return tomllib.loads((ROOT / path).read_text())


def first_party() -> dict[str, Path]:
    """This repository's own distributions (uv takes them from their folder): never locked."""
    sources = pyproject()["tool"]["uv"]["sources"]
    return {canonicalize_name(name): ROOT / source["path"] for name, source in sources.items()}


@pytest.mark.parametrize(
    "table",
    [
        "pyproject.toml:project.dependencies",
        "pyproject.toml:dependency-groups.build",
        "schemas/pyproject.toml:project.dependencies",  # the image installs it with --no-deps
    ],
)
def test_lock_satisfies_pyproject(table: str) -> None:
    """Every third-party dependency a pyproject.toml names is in the lock at a version it allows."""
    path, _, keys = table.partition(":")
    section, key = keys.split(".")
    wanted = [Requirement(r) for r in pyproject(path)[section][key]]
    locked = for_image()
    env: dict[str, Any] = IMAGE
    for requirement in wanted:
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        name = canonicalize_name(requirement.name)
        if name in first_party():
            continue
        assert name in locked, f"{requirement} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock has {name}=={locked[name]}, pyproject wants {requirement}: "
            "run `make lock`"
        )


def test_first_party_distributions_are_built_not_locked() -> None:
    """twap-schemas comes from schemas/, at the version the worker asks for, and is not locked."""
    assert set(first_party()) == {"twap-schemas"}
    wanted = {
        canonicalize_name(r.name): r
        for r in map(Requirement, pyproject()["project"]["dependencies"])
    }
    for name, folder in first_party().items():
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        assert canonicalize_name(project["name"]) == name
        assert wanted[name].specifier.contains(project["version"]), (wanted[name], project)
        assert name not in {canonicalize_name(n) for n, *_ in entries()}


@pytest.mark.parametrize("path", ["pyproject.toml", "schemas/pyproject.toml"])
def test_build_backend_is_locked(path: str) -> None:
    """The image builds both wheels offline: each [build-system] requires is in the lock too."""
    locked = for_image()
    for raw in pyproject(path)["build-system"]["requires"]:
        requirement = Requirement(raw)
        assert requirement.specifier.contains(locked[canonicalize_name(requirement.name)])
