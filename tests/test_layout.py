"""The package's structure: no module of ``laperm`` imports itself round a circle.

Read from the sources with :mod:`ast` (nothing is imported): every ``import``
of a ``laperm`` module, at the top of a file or inside a function, is an arrow
from the importing module to the imported one; the arrows must form no cycle.
An import inside a function hides a cycle from Python but not from a reader,
so those count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "laperm"


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """``{"laperm.data.pipeline": path, ...}`` for every module of the package."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imported(node: ast.AST, module: str, is_package: bool, modules: dict) -> list[str]:
    """The ``laperm`` modules one import statement names."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".") if is_package else module.split(".")[:-1]
            parts = parts[:len(parts) - node.level + 1]
            base = ".".join(parts + [base] if base else parts)
        # `from laperm import data` names a module; `from laperm.data import load` does not.
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                   for alias in node.names]
    found = []
    for target in targets:
        while target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in modules and target.split(".")[0] == "laperm":
            found.append(target)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the ``laperm`` modules it imports anywhere in its file."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(t for t in _imported(node, name, path.name == "__init__.py",
                                                        modules) if t != name)
    return graph


def _parents(name: str) -> set[str]:
    """A module's packages: importing ``laperm.data.pipeline`` runs ``laperm.data`` first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(without_arrows_to_own_packages(import_graph()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def without_arrows_to_own_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` without a module's arrows to its own packages (``laperm.viz.results`` ->
    ``laperm.viz``): Python runs a package before its modules anyway.  A package's arrows
    down to its modules stay: ``laperm.viz`` gathering ``laperm.viz.results``, which imports
    a module that imports ``laperm.viz``, is a cycle Python fails on."""
    return {name: {t for t in targets if t not in _parents(name)} for name, targets in graph.items()}


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    package = tmp_path / "laperm"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from laperm.b import g\n")
    (package / "b.py").write_text("def g():\n    from laperm import a\n")
    (package / "c.py").write_text("from . import a\n")
    graph = import_graph(package)
    assert graph["laperm.a"] == {"laperm.b"} and graph["laperm.c"] == {"laperm.a"}
    assert find_cycle(graph) == ["laperm.a", "laperm.b", "laperm.a"]


def test_the_cycle_check_finds_a_cycle_through_a_package_that_gathers_its_modules(tmp_path):
    """laperm.viz gathers laperm.viz.results, which reaches laperm.viz again through
    another module (a cycle a helper once wrote and Python refused)."""
    package = tmp_path / "laperm"
    (package / "viz").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "viz" / "__init__.py").write_text("from laperm.viz.results import plot\n")
    (package / "viz" / "style.py").write_text("")
    (package / "viz" / "results.py").write_text("from laperm.viz.style import *\nfrom laperm import page\n")
    (package / "page.py").write_text("from laperm import viz\n")
    graph = without_arrows_to_own_packages(import_graph(package))
    assert find_cycle(graph) == ["laperm.page", "laperm.viz", "laperm.viz.results", "laperm.page"]


@pytest.mark.parametrize("module", ["laperm.config", "laperm.paper", "laperm.method.ops"])
def test_the_foundations_import_no_other_layer(module):
    """The config, the paper's facts and the pure maths sit at the bottom."""
    allowed = {"laperm.config", "laperm.paper", "laperm.exceptions", "laperm"}
    assert import_graph()[module] <= allowed, import_graph()[module]
