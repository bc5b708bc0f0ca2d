"""The repository's Dockerfile, read with dockerfile-parse: instructions in order, final ENV."""

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


def parse() -> tuple[list[Instruction], dict[str, str]]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    steps = [
        Instruction(s["instruction"].upper(), s["value"])
        for s in parser.structure
        if s["instruction"].upper() != "COMMENT"
    ]
    return steps, dict(parser.envs)


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
