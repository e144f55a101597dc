"""The package's import graph has no cycles (issue #22), checked from the source with ``ast``.

Two graphs are checked:

* modules: ``amago_rl.envs.wrap -> amago_rl.specs`` ...; a cycle here can fail at import time.
* layers: the same edges between the package's top-level parts (``amago_rl.envs``,
  ``amago_rl.modules``, ``amago_rl.config`` ...). A cycle here means two layers need each other
  even when no single import fails: ``envs/builtin/tmaze_exploration.py`` imported
  ``modules/exploration.py``, which imported ``envs/action_spec.py``.

What counts as an edge ``M -> T`` (module ``M`` needs module ``T``):

* every ``import`` / ``from ... import`` in ``M``, at module level *and inside functions*: a cycle
  through a function-local ("lazy") import does not fail at import time, but it is still two
  layers that need each other, which is what this test is about. Imports under
  ``if TYPE_CHECKING:`` are not counted (they never run).
* ``from P import name`` targets ``P.name`` when that is a module of the package, else ``P``.
* importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first, so ``M`` also needs
  every package on the way, except the packages that contain ``M`` itself (they are already
  being imported when ``M`` runs).

Not counted: imports by string (``importlib.import_module`` in the encoder registries), which
name their target only at run time.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "amago_rl"

#: The bottom layer: the action-spec module may import nothing from amago_rl but these.
SPEC_MODULE = "amago_rl.specs"
SPEC_MODULE_MAY_IMPORT = {"amago_rl.keys", "amago_rl.errors"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function


def module_names(package_dir: Path) -> dict[str, Path]:
    """``{"pkg.sub.mod": path}`` for every ``.py`` file under ``package_dir``."""
    root = package_dir.parent
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """``(import statement, inside a function)`` for every import that can run."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:  # the `else:` branch does run
                yield from _imports_of_stmt(stmt, in_function)
        else:
            lazy = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            yield from _imports(node, lazy)


def _imports_of_stmt(stmt: ast.stmt, in_function: bool) -> Iterator[tuple[ast.stmt, bool]]:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        yield stmt, in_function
    else:
        yield from _imports(stmt, in_function)


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_edges(package_dir: Path) -> list[Edge]:
    """Every edge between modules of the package (see the module docstring)."""
    modules = module_names(package_dir)
    edges = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, lazy in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert isinstance(node, ast.ImportFrom)
                if node.level:
                    base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            own = set(_ancestors(name)) | {name}
            for target in targets:
                needed = [*_ancestors(target), target]
                for t in needed:
                    if t in modules and t not in own:
                        edges.append(Edge(name, t, node.lineno, lazy))
    return edges


def find_cycle(edges: list[Edge]) -> list[Edge] | None:
    """One cycle of the graph as its edges in order, or None."""
    graph: dict[str, list[Edge]] = {}
    for e in edges:
        graph.setdefault(e.source, []).append(e)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[Edge] = []

    def visit(node: str) -> list[Edge] | None:
        state[node] = 1
        for e in graph.get(node, []):
            if state.get(e.target) == 1:  # back to a module on the current path
                start = next((i for i, p in enumerate(path) if p.source == e.target), len(path))
                return [*path[start:], e]
            if e.target not in state:
                path.append(e)
                found = visit(e.target)
                if found:
                    return found
                path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def format_cycle(cycle: list[Edge]) -> str:
    lines = [f"import cycle of {len(cycle)} edges:"]
    for e in cycle:
        how = "function-local import" if e.lazy else "import"
        lines.append(f"  {e.source} -> {e.target}  ({how}, line {e.line})")
    return "\n".join(lines)


def layer(name: str) -> str:
    """The top-level part of the package a module belongs to (its first two name parts):
    ``amago_rl.envs.builtin.tmaze -> amago_rl.envs``, ``amago_rl.config -> amago_rl.config``."""
    return ".".join(name.split(".")[:2])


def layer_edges(edges: list[Edge]) -> list[Edge]:
    """The edges between different layers, each end replaced by its layer."""
    return [
        Edge(layer(e.source), layer(e.target), e.line, e.lazy)
        for e in edges
        if layer(e.source) != layer(e.target)
    ]


def test_package_import_graph_has_no_cycles() -> None:
    edges = import_edges(PACKAGE_DIR)
    assert len(edges) > 100, "the graph builder found suspiciously few imports"
    cycle = find_cycle(edges)
    assert cycle is None, format_cycle(cycle)  # type: ignore[arg-type]


def test_layer_graph_has_no_cycles() -> None:
    edges = import_edges(PACKAGE_DIR)
    cycle = find_cycle(layer_edges(edges))
    if cycle is not None:
        steps = {(e.source, e.target) for e in cycle}
        through = sorted(
            {
                f"  {e.source} -> {e.target} (line {e.line})"
                for e in edges
                if (layer(e.source), layer(e.target)) in steps
            }
        )
        layers = " -> ".join([cycle[0].source, *(e.target for e in cycle)])
        raise AssertionError(f"layer cycle {layers}, through:\n" + "\n".join(through))


def test_action_spec_module_is_the_bottom_layer() -> None:
    """The one action-spec classifier is importable from every layer (envs, modules,
    objectives): it imports nothing from the package but keys and errors."""
    assert SPEC_MODULE in module_names(PACKAGE_DIR)
    imported = {e.target for e in import_edges(PACKAGE_DIR) if e.source == SPEC_MODULE}
    assert imported <= SPEC_MODULE_MAY_IMPORT, sorted(imported - SPEC_MODULE_MAY_IMPORT)


# ------------------------------------------------------------------ the checker itself


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checker_finds_a_cycle_through_a_package_init(tmp_path: Path) -> None:
    # The shape of the cycle issue #22 reports: b.x imports a.spec, whose package __init__
    # imports a.task, which imports b.x.
    pkg = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a/__init__.py": "from pkg.a.task import Task\n",
            "pkg/a/spec.py": "X = 1\n",
            "pkg/a/task.py": "from pkg.b.x import Y\nTask = Y\n",
            "pkg/b/__init__.py": "",
            "pkg/b/x.py": "from pkg.a.spec import X\nY = X\n",
        },
    )
    cycle = find_cycle(import_edges(pkg))
    assert cycle is not None
    assert {e.source for e in cycle} == {"pkg.a", "pkg.a.task", "pkg.b.x"}
    assert cycle[0].source == cycle[-1].target
    assert all(a.target == b.source for a, b in itertools.pairwise(cycle))
    assert "pkg.b.x -> pkg.a" in format_cycle(cycle)


def test_checker_finds_a_layer_cycle_without_a_module_cycle(tmp_path: Path) -> None:
    # The cycle issue #22 reports: no module imports itself back, but the layers do.
    pkg = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/envs/__init__.py": "",
            "pkg/envs/spec.py": "X = 1\n",
            "pkg/envs/task_exploration.py": "from pkg.modules.exploration import Y\n",
            "pkg/modules/__init__.py": "",
            "pkg/modules/exploration.py": "from pkg.envs.spec import X\nY = X\n",
        },
    )
    edges = import_edges(pkg)
    assert find_cycle(edges) is None
    cycle = find_cycle(layer_edges(edges))
    assert cycle is not None and {e.source for e in cycle} == {"pkg.envs", "pkg.modules"}


@pytest.mark.parametrize(
    ("body", "cyclic"),
    [
        ("def f():\n    from pkg import a\n", True),  # function-local imports count
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n", False),
        ("from . import a\n", True),  # relative imports are resolved
        ("from .a import VALUE\n", True),
        ("import pkg.c\n", False),
    ],
)
def test_checker_edge_rules(tmp_path: Path, body: str, cyclic: bool) -> None:
    pkg = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import G\nVALUE = G\n",
            "pkg/b.py": body + "G = 1\n",
            "pkg/c.py": "",
        },
    )
    assert (find_cycle(import_edges(pkg)) is not None) is cyclic


def test_package_init_importing_its_submodules_is_not_a_cycle(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": "from pkg.b import B\nA = B\n",
            "pkg/b.py": "import pkg\nB = 1\n",
        },
    )
    assert find_cycle(import_edges(pkg)) is None
