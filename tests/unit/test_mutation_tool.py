"""The mutation tool behind `make mutate`: which mutants it makes, and that it applies them."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mutate.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate_tool", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate_tool"] = module
    spec.loader.exec_module(module)
    return module


def descriptions(tool: ModuleType, source: str) -> list[str]:
    return [site.description for site in tool.sites(source)]


def run(tool: ModuleType, source: str, description: str) -> dict[str, object]:
    """Execute the source with the one mutant of that description applied."""
    [index] = [s.index for s in tool.sites(source) if s.description == description]
    namespace: dict[str, object] = {}
    exec(compile(tool.mutated_tree(source, index), "<mutant>", "exec"), namespace)
    return namespace


def test_each_element_of_a_module_level_table_can_be_dropped(tool: ModuleType) -> None:
    """A frozenset literal at module level gives one mutant per element."""
    source = "T = frozenset({'a', 'b'})\n"
    assert "drop element 'a'" in descriptions(tool, source)
    assert run(tool, source, "drop element 'a'")["T"] == frozenset({"b"})


def test_a_boundary_gives_its_off_by_one_mutants(tool: ModuleType) -> None:
    """`x < 1` becomes `x < 2`, `x < 0`, `x <= 1`, and the condition is negated."""
    source = "def f(x):\n    if x < 1:\n        return 'low'\n    return 'ok'\n"
    assert descriptions(tool, source) == [
        "1 -> 2", "1 -> 0", "< -> <=", "negate condition", "'low' -> ''", "return None",
        "'ok' -> ''", "return None"]
    f = run(tool, source, "< -> <=")["f"]
    assert f(1) == "low"  # type: ignore[operator]


def test_docstrings_and_imports_are_left_alone(tool: ModuleType) -> None:
    """A module of a docstring and imports has no mutant."""
    assert tool.sites('"""Doc."""\n\nfrom __future__ import annotations\nimport os\n') == []


def test_keyword_constants_are_named(tool: ModuleType) -> None:
    """A constant given as a keyword argument is named after it."""
    assert descriptions(tool, "f(frozen=True, slots=True)\n") == [
        "frozen=True -> False", "slots=True -> False", "remove statement"]


def test_a_raise_and_a_decorator_can_be_removed(tool: ModuleType) -> None:
    """Removing a raise or a decorator are mutants of their own."""
    source = "@staticmethod\ndef f():\n    raise ValueError\n"
    assert descriptions(tool, source) == ["remove raise", "remove decorator @staticmethod"]
    assert not isinstance(run(tool, source, "remove decorator @staticmethod")["f"], staticmethod)
    assert isinstance(tool.mutated_tree(source, 0), ast.Module)


def test_every_configured_module_maps_to_the_module_imported_from_it(tool: ModuleType) -> None:
    """Each file mutate.toml lists names the module whose source it is (schemas/ is no package)."""
    root = SCRIPT.parents[1]
    for path in tool.load_config().modules:
        module = importlib.import_module(tool._module_name(path))
        assert Path(str(module.__file__)).resolve() == (root / path).resolve(), path
        assert module.__name__.split(".")[0] in tool._PROJECT, path
