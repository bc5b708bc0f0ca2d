"""Write (or check) the published interface: schemas/json/*.json and docs/asyncapi.json.

    python -m twap_schemas.export           # regenerate every file
    python -m twap_schemas.export --check   # exit 1, naming each file that is out of date

Both are generated from the pydantic models, so they change only when the models do; a test
fails when a checked-in file no longer matches what the models generate. The files belong to the
repository, so this runs from a clone (the editable install), never from an installed wheel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from twap_schemas.asyncapi import asyncapi_document
from twap_schemas.json_schema import message_schemas

ROOT = Path(__file__).resolve().parents[2]  # the clone holding schemas/twap_schemas/export.py
SCHEMA_DIR = Path("schemas/json")
ASYNCAPI_FILE = Path("docs/asyncapi.json")


def render(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generated() -> dict[Path, str]:
    """Every generated file, relative to the repository root, with its exact text."""
    files = {SCHEMA_DIR / m.file_name: render(m.schema) for m in message_schemas()}
    files[ASYNCAPI_FILE] = render(asyncapi_document())
    return files


def stale(root: Path = ROOT) -> list[str]:
    """Files that differ from what the models generate, are missing, or are left over."""
    expected = generated()
    problems = [
        str(path)
        for path, text in expected.items()
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != text
    ]
    on_disk = {p.relative_to(root) for p in (root / SCHEMA_DIR).glob("*.json")}
    problems += [f"{path} (not generated any more)" for path in sorted(on_disk - set(expected))]
    return problems


def write(root: Path = ROOT) -> list[Path]:
    expected = generated()
    (root / SCHEMA_DIR).mkdir(parents=True, exist_ok=True)
    for leftover in set((root / SCHEMA_DIR).glob("*.json")) - {root / p for p in expected}:
        leftover.unlink()
    for path, text in expected.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return sorted(expected)


def main(argv: list[str]) -> int:
    if not (ROOT / "schemas" / "pyproject.toml").is_file():
        sys.stderr.write(
            f"{ROOT} is not a clone of the repository (no schemas/pyproject.toml): run this "
            "from a clone with the editable install (`make install`)\n"
        )
        return 2
    if "--check" in argv:
        problems = stale()
        for problem in problems:
            sys.stderr.write(f"stale: {problem}\n")
        if problems:
            sys.stderr.write("run `python -m twap_schemas.export` and commit the result\n")
        return 1 if problems else 0
    for path in write():
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
