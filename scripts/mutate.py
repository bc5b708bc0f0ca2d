"""Mutation testing of the pure core: how many deliberate bugs does `tests/unit` catch?

Usage: python scripts/mutate.py [MODULE_PATH ...] [--list] [--show-survivors]

Each mutant is one small change to one module's syntax tree (a boundary moved, an operator
swapped, a constant changed, an element dropped from a table, a raise or a decorator removed).
For each, a forked child loads the mutated module in place of the file, reloads what imports
it and runs the unit test files that can see it; the mutant is killed when a test fails.
Nothing is written to disk. Mutants listed in scripts/mutate.toml as equivalent (no test can
tell them apart from the original) are counted apart and left out of the score.

Written for this project rather than taken from a tool: mutmut 3 mutates only inside
functions and cosmic-ray drops no element from a collection, so neither could delete a status
from `TERMINAL` or a transition from `TRANSITIONS`.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import importlib.abc
import importlib.util
import os
import select
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).with_name("mutate.toml")

_COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
    ast.LShift: ast.RShift, ast.RShift: ast.LShift,
}
_SYMBOL = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+",
    ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
    ast.LShift: "<<", ast.RShift: ">>",
}


@dataclass(frozen=True)
class Site:
    """One mutant: where it is and what it changes."""

    index: int
    line: int
    description: str


class _Mutator(ast.NodeTransformer):
    """Walks a module in a fixed order, numbering every possible mutation.

    With `target` None it only lists the sites; with a number it applies that one mutation.
    """

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.sites: list[Site] = []
        self._annotation = 0  # inside an annotation only constants (Literal values) mutate
        self._keyword: str | None = None  # the keyword a constant is the value of
        self._seen: dict[tuple[int, str], int] = {}

    def _offer(self, node: ast.AST, description: str,
               build: Callable[[], ast.AST | None], line: int | None = None
               ) -> ast.AST | bool | None:
        index = len(self.sites)
        line = line or int(getattr(node, "lineno", 0))
        # The same change twice on one line gets a number, so each mutant has its own name.
        seen = self._seen[(line, description)] = self._seen.get((line, description), 0) + 1
        if seen > 1:
            description = f"{description} (#{seen})"
        self.sites.append(Site(index, line, description))
        if index != self.target:
            return False
        new = build()
        if new is not None:
            ast.copy_location(new, node)
            ast.fix_missing_locations(new)
        return new

    def _try(self, node: ast.AST, options: Sequence[tuple[str, Callable[[], ast.AST | None]]],
             lines: Sequence[int] | None = None) -> ast.AST | None:
        for i, (description, build) in enumerate(options):
            result = self._offer(node, description, build, lines[i] if lines else None)
            if result is not False:
                return result  # type: ignore[return-value]
        return node

    # -- where not to look --------------------------------------------------------------------
    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        """Visit statements, leaving a docstring alone."""
        out: list[ast.stmt] = []
        for i, stmt in enumerate(body):
            if i == 0 and _is_docstring(stmt):
                out.append(stmt)
                continue
            new = self.visit(stmt)
            if new is None:
                out.append(ast.Pass())
                ast.copy_location(out[-1], stmt)
            elif isinstance(new, list):
                out.extend(new)
            else:
                out.append(new)
        return out or [ast.Pass()]

    def visit_Module(self, node: ast.Module) -> ast.AST:
        node.body = self._body(node.body)
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        return node

    def visit_Import(self, node: ast.Import) -> ast.AST:
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.bases = [self.visit(b) for b in node.bases]
        node.body = self._body(node.body)
        node.decorator_list = self._decorators(node)
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        # Parameter and return annotations are strings here (`from __future__ import
        # annotations`); defaults are code.
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [None if d is None else self.visit(d)
                                 for d in node.args.kw_defaults]
        node.body = self._body(node.body)
        node.decorator_list = self._decorators(node)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._function(node)

    def _decorators(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                    ) -> list[ast.expr]:
        kept: list[ast.expr] = []
        for dec in node.decorator_list:
            dec = self.visit(dec)
            result = self._offer(dec, f"remove decorator @{ast.unparse(dec)}", lambda: None)
            if result is False:
                kept.append(dec)
        return kept

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        self._annotation += 1
        node.annotation = self.visit(node.annotation)
        self._annotation -= 1
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST | None:
        if self._annotation:
            return node
        return self._try(node, [("f-string -> ''", lambda: ast.Constant(""))])

    # -- operators ----------------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> ast.AST | None:
        self.generic_visit(node)
        if self._annotation:
            return node
        options = []
        for i, op in enumerate(node.ops):
            swap = _COMPARE_SWAP.get(type(op))
            if swap is None:
                continue

            def build(i: int = i, swap: type[ast.cmpop] = swap) -> ast.AST:
                new = copy.deepcopy(node)
                new.ops[i] = swap()
                return new

            options.append((f"{_SYMBOL[type(op)]} -> {_SYMBOL[swap]}", build))
        return self._try(node, options)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST | None:
        self.generic_visit(node)
        swap = _BINOP_SWAP.get(type(node.op))
        if self._annotation or swap is None:
            return node
        return self._try(node, [(f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[swap]}",
                                 lambda: ast.BinOp(node.left, swap(), node.right))])

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST | None:
        self.generic_visit(node)
        other, text = (ast.Or(), "and -> or") if isinstance(node.op, ast.And) else (
            ast.And(), "or -> and")
        return self._try(node, [(text, lambda: ast.BoolOp(other, node.values))])

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST | None:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return self._try(node, [("drop not", lambda: node.operand)])
        if isinstance(node.op, ast.USub):
            return self._try(node, [("drop unary -", lambda: node.operand)])
        return node

    def _negate_test(self, node: ast.If | ast.While | ast.IfExp) -> None:
        result = self._offer(node.test, "negate condition",
                             lambda: ast.UnaryOp(ast.Not(), node.test))
        if result is not False:
            node.test = result  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> ast.AST:
        node.test = self.visit(node.test)
        self._negate_test(node)
        node.body = self._body(node.body)
        node.orelse = self._body(node.orelse) if node.orelse else []
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        node.test = self.visit(node.test)
        self._negate_test(node)
        node.body = self._body(node.body)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        self._negate_test(node)
        return node

    # -- constants and tables -----------------------------------------------------------------
    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        self._keyword = node.arg if isinstance(node.value, ast.Constant) else None
        node.value = self.visit(node.value)
        self._keyword = None
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST | None:
        value = node.value
        name = f"{self._keyword}=" if self._keyword else ""
        if isinstance(value, bool):
            return self._try(node, [(f"{name}{value} -> {not value}",
                                     lambda: ast.Constant(not value))])
        if isinstance(value, int):
            return self._try(node, [(f"{name}{value} -> {value + 1}",
                                     lambda: ast.Constant(value + 1)),
                                    (f"{name}{value} -> {value - 1}",
                                     lambda: ast.Constant(value - 1))])
        if isinstance(value, float):
            return self._try(node, [(f"{name}{value} -> {value + 1}",
                                     lambda: ast.Constant(value + 1))])
        if isinstance(value, str):
            new = "" if value else "mutant"
            return self._try(node, [(f"{name}{_short(value)!r} -> {new!r}",
                                     lambda: ast.Constant(new))])
        return node

    def _drop_elements(self, node: ast.List | ast.Tuple | ast.Set) -> ast.AST | None:
        self.generic_visit(node)
        if self._annotation or isinstance(getattr(node, "ctx", None), ast.Store):
            return node
        options = []
        for i, elt in enumerate(node.elts):
            def build(i: int = i) -> ast.AST:
                new = copy.deepcopy(node)
                del new.elts[i]
                return new

            options.append((f"drop element {_short(ast.unparse(elt))}", build))
        return self._try(node, options, [elt.lineno for elt in node.elts])

    def visit_List(self, node: ast.List) -> ast.AST | None:
        return self._drop_elements(node)

    def visit_Tuple(self, node: ast.Tuple) -> ast.AST | None:
        return self._drop_elements(node)

    def visit_Set(self, node: ast.Set) -> ast.AST | None:
        return self._drop_elements(node)

    def visit_Dict(self, node: ast.Dict) -> ast.AST | None:
        self.generic_visit(node)
        options = []
        for i, key in enumerate(node.keys):
            label = "**" + ast.unparse(node.values[i]) if key is None else ast.unparse(key)

            def build(i: int = i) -> ast.AST:
                new = copy.deepcopy(node)
                del new.keys[i]
                del new.values[i]
                return new

            options.append((f"drop entry {_short(label)}", build))
        return self._try(node, options, [v.lineno for v in node.values])

    # -- statements ---------------------------------------------------------------------------
    def visit_Return(self, node: ast.Return) -> ast.AST | None:
        self.generic_visit(node)
        if node.value is None or (isinstance(node.value, ast.Constant)
                                  and node.value.value is None):
            return node
        return self._try(node, [("return None", lambda: ast.Return(ast.Constant(None)))])

    def visit_Raise(self, node: ast.Raise) -> ast.AST | None:
        self.generic_visit(node)
        return self._try(node, [("remove raise", ast.Pass)])

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        self.generic_visit(node)
        if isinstance(node.value, ast.Constant):
            return node
        return self._try(node, [("remove statement", ast.Pass)])

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST | None:
        self.generic_visit(node)
        return self._try(node, [("remove statement", ast.Pass)])


def _is_docstring(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def sites(source: str) -> list[Site]:
    """Every mutant of a module's source, numbered in a fixed order."""
    mutator = _Mutator()
    mutator.visit(ast.parse(source))
    return mutator.sites


def mutated_tree(source: str, index: int) -> ast.Module:
    """The module's tree with mutant `index` applied."""
    tree = ast.parse(source)
    _Mutator(index).visit(tree)
    return ast.fix_missing_locations(tree)


# -- running -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    modules: list[str]
    tests: list[str]
    equivalent: dict[tuple[str, str, str], str]  # (module, source line, mutation) -> why


def load_config(path: Path = CONFIG) -> Config:
    data = tomllib.loads(path.read_text())
    equivalent = {(e["module"], e["line"].strip(), e["mutation"]): e["why"]
                  for e in data.get("equivalent", [])}
    return Config(modules=data["modules"], tests=data["tests"], equivalent=equivalent)


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the mutated code object for one module name; every other import is untouched."""

    def __init__(self, name: str, path: Path, code: CodeType) -> None:
        self.name, self.path, self.code = name, path, code

    def find_spec(self, fullname: str, path: object, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=str(self.path))

    def exec_module(self, module: ModuleType) -> None:
        module.__file__ = str(self.path)
        exec(self.code, module.__dict__)  # running the mutant is the point


# Folders that hold a package without being one (the twap-schemas distribution's).
_SOURCE_ROOTS = ("schemas/",)


def _module_name(path: str) -> str:
    for root in _SOURCE_ROOTS:
        path = path.removeprefix(root)
    return path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


_PROJECT = {"worker", "twap_schemas", "tests"}


class _FileModule(ModuleType):
    def __init__(self, path: str) -> None:
        super().__init__("file")
        self.__file__ = path


def _imports_of(name: str, module: ModuleType) -> set[str]:
    """Project modules that `module` names in an import statement, anywhere in its source."""
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return set()
    is_package = path.endswith("__init__.py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in _PROJECT}


_IMPORT_GRAPH: dict[str, set[str]] = {}  # filled once by the parent, read by every child


def _dependents(target: str) -> set[str]:
    """Loaded project modules that import `target`, directly or through each other."""
    if not _IMPORT_GRAPH:
        _IMPORT_GRAPH.update({n: _imports_of(n, m) for n, m in list(sys.modules.items())
                              if n.split(".")[0] in _PROJECT})
    imports = _IMPORT_GRAPH
    stale = {target}
    grew = True
    while grew:
        grew = False
        for name, names in imports.items():
            if name not in stale and names & stale:
                stale.add(name)
                grew = True
    return stale


def _purge(names: set[str]) -> None:
    """Forget these modules, and their parent package's attribute for each, so the next import
    runs them again (`from worker.core import ids` reads the package attribute first)."""
    for name in names:
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and getattr(sys.modules[parent], child, None) is not None:
            delattr(sys.modules[parent], child)


def _child(module_path: str | None, index: int | None, tests: list[str], verbose: bool) -> None:
    """In the forked child: install the mutant, run the unit tests, exit with pytest's code."""
    import hypothesis
    import pytest

    if module_path is not None and index is not None:
        # Only what imports the mutated module loads again; the parent loaded the rest once.
        _purge(_dependents(_module_name(module_path)))
        source = (ROOT / module_path).read_text()
        code = compile(mutated_tree(source, index), str(ROOT / module_path), "exec")
        sys.meta_path.insert(0, _MutantFinder(_module_name(module_path), ROOT / module_path, code))
    # The same examples every run, and none of a mutant's failures kept in the example database.
    hypothesis.settings.register_profile("mutate", database=None, derandomize=True)
    hypothesis.settings.load_profile("mutate")
    if not verbose:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    # Plugins were imported before pytest started (to fork with them loaded), so pytest cannot
    # rewrite their asserts; that warning is expected here. The unit tests use no fixture of
    # tests/conftest.py, whose imports (the whole worker) would be reloaded for every mutant.
    exit_code = pytest.main([*tests, "-x", "-q", "-p", "no:cacheprovider", "--no-header",
                             "--noconftest", "-W", "ignore::pytest.PytestAssertRewriteWarning"])
    os._exit(int(exit_code))


def _run(module_path: str | None, index: int | None, tests: list[str], timeout: float,
         verbose: bool = False) -> str:
    """'killed', 'survived' or 'timeout' (a hang counts as killed: a test run would notice)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            _child(module_path, index, tests, verbose)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(99)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        select.select([], [], [], 0.02)
    return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"


def _test_files(folders: list[str]) -> dict[Path, set[str]]:
    """Each test file under the folders, with the project modules it imports."""
    files: dict[Path, set[str]] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("test_*.py")):
            name = _module_name(str(path.relative_to(ROOT)))
            files[path] = _imports_of(name, _FileModule(str(path)))
    return files


def _prepare(test_files: dict[Path, set[str]]) -> None:
    """Load once, before forking, every project module the tests import (and so pydantic,
    hypothesis and the rest): each mutant's child then reloads only what the mutant touches."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import pytest  # noqa: F401

    for name in sorted(set().union(*test_files.values())):
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # `from pkg import name` lists attributes too; those are not modules
    _dependents("")  # builds the import graph once, before the forks


def _relevant(module: str, test_files: dict[Path, set[str]]) -> list[str]:
    """The test files that import the module, directly or through another: no other test can
    see a mutant of it."""
    stale = _dependents(_module_name(module))
    return [str(path.relative_to(ROOT)) for path, names in test_files.items() if names & stale]


@dataclass(frozen=True)
class Row:
    module: str
    total: int
    killed: int
    equivalent: int
    survived: int
    score: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module paths (default: all in mutate.toml)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--show-survivors", action="store_true", help="print each survivor")
    parser.add_argument("--equivalents-markdown", action="store_true",
                        help="print the equivalent mutants as a markdown table")
    args = parser.parse_args(argv)
    config = load_config()
    modules = args.modules or config.modules

    if args.equivalents_markdown:
        print("| module | line | mutation | why it cannot be told apart |")
        print("|---|---|---|---|")
        for (module, line, mutation), why in config.equivalent.items():
            print(f"| `{module}` | `{line.replace('|', '¦')}` | {mutation} | {why} |")
        return 0

    if args.list:
        for module in modules:
            source = (ROOT / module).read_text()
            lines = source.splitlines()
            for site in sites(source):
                print(f"{module}:{site.line}: {site.description}  | {lines[site.line - 1].strip()}")
        return 0

    test_files = _test_files(config.tests)
    _prepare(test_files)
    started = time.monotonic()
    if _run(None, None, config.tests, 600, verbose=False) != "survived":
        print("the unit tests fail without any mutant; fix them first", file=sys.stderr)
        return 2
    baseline = time.monotonic() - started
    timeout = max(20.0, 10 * baseline)
    print(f"baseline: {config.tests} pass in {baseline:.1f} s; timeout per mutant {timeout:.0f} s")

    rows: list[Row] = []
    used_equivalents: set[tuple[str, str, str]] = set()
    for module in modules:
        source = (ROOT / module).read_text()
        lines = source.splitlines()
        killed = equivalent = timeouts = 0
        survivors: list[str] = []
        all_sites = sites(source)
        relevant = _relevant(module, test_files)
        for site in all_sites:
            key = (module, lines[site.line - 1].strip(), site.description)
            outcome = _run(module, site.index, relevant, timeout) if relevant else "survived"
            if outcome == "survived" and key in config.equivalent:
                equivalent += 1
                used_equivalents.add(key)
            elif outcome == "survived":
                survivors.append(f"  {module}:{site.line}: {site.description}  | {key[1]}")
            else:
                killed += 1
                timeouts += outcome == "timeout"
                if key in config.equivalent:
                    print(f"  listed as equivalent but killed: {module}:{site.line}: "
                          f"{site.description}")
        total = len(all_sites)
        scored = total - equivalent
        score = 100.0 * killed / scored if scored else 100.0
        rows.append(Row(module, total, killed, equivalent, len(survivors), score))
        print(f"{module}: {total} mutants, {killed} killed, {equivalent} equivalent, "
              f"{len(survivors)} survived, score {score:.1f}%"
              + (f" ({timeouts} killed by the timeout)" if timeouts else ""), flush=True)
        if args.show_survivors and survivors:
            print("\n".join(survivors), flush=True)

    print()
    print("| module | mutants | killed | equivalent | survived | score |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| `{r.module}` | {r.total} | {r.killed} | {r.equivalent} | {r.survived} "
              f"| {r.score:.1f}% |")
    total, killed, equivalent, survived = (sum(getattr(r, f) for r in rows)
                                           for f in ("total", "killed", "equivalent", "survived"))
    overall = 100.0 * killed / (total - equivalent) if total - equivalent else 100.0
    print(f"| all | {total} | {killed} | {equivalent} | {survived} | {overall:.1f}% |")
    print(f"took {time.monotonic() - started:.0f} s")
    if not args.modules:
        for key in sorted(set(config.equivalent) - used_equivalents):
            print(f"stale equivalent entry (no such surviving mutant): {key}")
    return 0 if all(r.score >= 90.0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
