"""scripts/rename_schemas_imports.py, which renames imports of `schemas` to `twap_schemas` (and
runs again over merged branches): what it rewrites, what it leaves, and that no file needs it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rename_schemas_imports.py"
OLD = "sche" + "mas"  # spelled apart, so that the script never rewrites this file's samples


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rename_schemas_imports", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rename_schemas_imports"] = module
    spec.loader.exec_module(module)
    return module


RENAMED = {
    f"from {OLD}.requests import SubmitRequest": "from twap_schemas.requests import SubmitRequest",
    f"from {OLD} import Side, parse_request": "from twap_schemas import Side, parse_request",
    f"import {OLD}.parse": "import twap_schemas.parse",
    f"import {OLD}": "import twap_schemas",
    f"    from {OLD}.export import ROOT": "    from twap_schemas.export import ROOT",
    f"run `python -m {OLD}.export` and commit": "run `python -m twap_schemas.export` and commit",
    f"x = {OLD}.common.Side.BUY": "x = twap_schemas.common.Side.BUY",
}


@pytest.mark.parametrize("old", list(RENAMED))
def test_imports_and_dotted_names_get_the_new_name(tool: ModuleType, old: str) -> None:
    """Import statements and dotted names headed by the old package name are renamed."""
    assert tool.rename(old) == RENAMED[old]


@pytest.mark.parametrize(
    "text",
    [
        f"{OLD}/json/reply.json",
        f"#/components/{OLD}/request.submit",
        f"message_{OLD}()",
        f"every message's {OLD}. Then",
        f"worker.{OLD}.thing",
        f"the {OLD} folder",
        *RENAMED.values(),
    ],
)
def test_paths_other_words_and_renamed_names_are_left_alone(tool: ModuleType, text: str) -> None:
    """Paths, other identifiers, prose and what is already renamed stay as they are."""
    assert tool.rename(text) == text


def test_no_python_file_still_imports_the_old_name(tool: ModuleType) -> None:
    """Every Python file of the repository uses twap_schemas (a merge that brings an import of
    the old name back fails here: run the script)."""
    files = tool.python_files()
    assert any(p.name == "requests.py" and p.parent.name == "twap_schemas" for p in files)
    assert [str(p) for p in files if tool.rename(p.read_text()) != p.read_text()] == []
