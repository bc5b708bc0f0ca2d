"""requirements.lock (the image's dependencies) pins every package with hashes and satisfies
what pyproject.toml asks for, so a forgotten `make lock` fails here rather than in a build."""

from __future__ import annotations

import re
import tomllib
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


@pytest.mark.parametrize("table", ["project.dependencies", "dependency-groups.build"])
def test_lock_satisfies_pyproject(table: str) -> None:
    """Every dependency pyproject.toml names is in the lock at a version it allows."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    section, key = table.split(".")
    wanted = [Requirement(r) for r in pyproject[section][key]]
    locked = for_image()
    env: dict[str, Any] = IMAGE
    for requirement in wanted:
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock has {name}=={locked[name]}, pyproject wants {requirement}: "
            "run `make lock`"
        )


def test_build_backend_is_locked() -> None:
    """The image builds the package offline: [build-system] requires is in the lock too."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    locked = for_image()
    for raw in pyproject["build-system"]["requires"]:
        requirement = Requirement(raw)
        assert requirement.specifier.contains(locked[canonicalize_name(requirement.name)])
