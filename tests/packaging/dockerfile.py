"""The repository's Dockerfile, read with dockerfile-parse: instructions in order, the final
stage's environment, the base images that are not stages of the file itself."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from dockerfile_parse import DockerfileParser

from tests.packaging.installed import ROOT


@dataclass(frozen=True, slots=True)
class Instruction:
    name: str  # FROM, RUN, USER, ... (upper case)
    value: str  # the arguments, continuation lines joined


def parse() -> list[Instruction]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return [
        Instruction(s["instruction"].upper(), s["value"])
        for s in parser.structure
        if s["instruction"].upper() != "COMMENT"
    ]


def external_images(steps: list[Instruction]) -> list[str]:
    """The images the FROM lines pull (a FROM naming an earlier stage pulls nothing)."""
    stages: set[str] = set()
    pulled = []
    for step in (s for s in steps if s.name == "FROM"):
        image, *rest = step.value.split()
        if image not in stages:
            pulled.append(image)
        if len(rest) == 2 and rest[0].upper() == "AS":
            stages.add(rest[1])
    return pulled


def final_env(steps: list[Instruction]) -> dict[str, str]:
    """The ENV the last stage runs with, including what it inherits from an earlier stage."""
    envs: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for step in steps:
        if step.name == "FROM":
            image, *rest = step.value.split()
            current = dict(envs.get(image, {}))
            if len(rest) == 2 and rest[0].upper() == "AS":
                envs[rest[1]] = current
        elif step.name == "ENV":
            current.update(word.split("=", 1) for word in shlex.split(step.value))
    return current


def exec_form(value: str) -> list[str]:
    """The JSON (exec) form of CMD / HEALTHCHECK CMD, which needs no shell to split it."""
    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), value
    return words


def healthcheck(value: str) -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK's options (--interval=30s ...) and its command in exec form."""
    options_part, _, command = value.partition("CMD")
    options = dict(opt.removeprefix("--").split("=", 1) for opt in shlex.split(options_part))
    return options, exec_form(command.strip())
