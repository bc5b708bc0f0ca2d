"""Point every import of the old top-level `schemas` package at `twap_schemas`, its new name.

    python scripts/rename_schemas_imports.py          # rewrite, then re-sort the imports
    python scripts/rename_schemas_imports.py --check  # exit 1, naming the files still to do

Idempotent: a second run changes nothing. It rewrites `from schemas import`, `import schemas`
and dotted names `schemas.x` (imports, and the same names in strings and comments, such as
`python -m schemas.export`) in every tracked Python file; paths such as `schemas/json` stay.
The new name sorts elsewhere among first-party imports and is longer, so ruff then re-sorts (and
re-wraps) the import blocks of the changed files that `make lint` checks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINTED = ("worker", "schemas", "tests", "bench")  # what `make lint` checks and formats
# `schemas` as a whole dotted name's head: not `message_schemas`, `components/schemas` or
# `twap_schemas` (so the rewrite does not apply twice).
OLD = re.compile(
    r"(?<![\w./-])schemas(?=\.[A-Za-z_])"
    r"|(?<=\bfrom )schemas(?= import\b)"
    r"|(?<=\bimport )schemas\b(?![./-])"
)


def python_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    this = Path(__file__).resolve()
    return [p for name in listed.split("\0") if name and (p := ROOT / name).resolve() != this]


def rename(text: str) -> str:
    return OLD.sub("twap_schemas", text)


def main(argv: list[str]) -> int:
    todo = [p for p in python_files() if p.is_file() and rename(p.read_text()) != p.read_text()]
    if "--check" in argv:
        for path in todo:
            sys.stderr.write(f"still imports schemas: {path.relative_to(ROOT)}\n")
        return 1 if todo else 0
    for path in todo:
        path.write_text(rename(path.read_text()))
        sys.stdout.write(f"renamed in {path.relative_to(ROOT)}\n")
    linted = [str(p) for p in todo if p.relative_to(ROOT).parts[0] in LINTED]
    if linted:  # only the import blocks: the rest of the code base is not ruff-formatted
        ruff = [sys.executable, "-m", "ruff", "check", "--quiet", "--select", "I", "--fix"]
        subprocess.run([*ruff, *linted], cwd=ROOT, check=False)  # exit 1 if others remain
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
