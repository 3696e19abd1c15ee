"""The package's layering (hdai_lessons/__init__.py): imports point down the tiers, and never in a cycle.

Tiers: core (0) < course (1) < lm, tasks (2) < module packages (3). Within tier 3 a later module may
import an earlier one (02 builds on 01's losses, 05 on 04's flows), never the reverse. Every import
counts, including those inside functions: a lazy import is still an arrow.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hdai_lessons"
TIER = {"core": 0, "course": 1, "lm": 2, "tasks": 2}
MODULE_ORDER = ["welcome", "rlvr", "cat", "sope", "flows", "unified"]      # modules 00..05


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: {imported hdai_lessons modules}}`` from every ``import`` / ``from … import`` in ``root``."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                for alias in node.names:                       # a submodule, else the module itself
                    candidate = f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in files else mod
                    if candidate in files and candidate != name:
                        targets.add(candidate)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in files and a.name != name}
        graph[name] = targets
    return graph


def rank(module: str) -> "tuple[int, int] | None":
    """(tier, position among modules) of a dotted name; None for the package root (the index)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    top = parts[1]
    if top in TIER:
        return (TIER[top], 0)
    if top in MODULE_ORDER:
        return (3, MODULE_ORDER.index(top))
    raise AssertionError(f"{module}: hdai_lessons/{top} is in no tier; add it to the layering in this test")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Arrows that point up a tier, or from a module package to a later one."""
    bad = []
    for src, targets in graph.items():
        rs = rank(src)
        if rs is None:
            continue
        for dst in targets:
            rd = rank(dst)
            same_package = src.split(".")[1] == dst.split(".")[1]
            if rd is not None and not same_package and rd > rs:
                bad.append(f"{src} -> {dst}")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package_init_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without a package ``__init__``'s own re-exports (``pkg`` → ``pkg.sub``), which are not cycles of concern."""
    return {src: {dst for dst in targets if not dst.startswith(src + ".")} for src, targets in graph.items()}


@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE)


def test_no_import_points_up_a_tier(graph):
    assert upward_imports(graph) == []


def test_no_import_cycles(graph):
    assert cycles(_package_init_edges(graph)) == []


def test_top_of_the_package_is_an_index_of_tiers():
    top = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__")))
    assert top == sorted(["__init__.py", "core", "course", "lm", "tasks", *MODULE_ORDER])


def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "hdai_lessons"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_checker_catches_an_upward_import_and_a_cycle(tmp_path):
    pkg = _write(tmp_path, {
        "__init__.py": "", "core/__init__.py": "", "lm/__init__.py": "", "rlvr/__init__.py": "", "cat/__init__.py": "",
        "core/ops.py": "def f():\n    from hdai_lessons.lm import sampling\n",       # lazy, still upward
        "lm/sampling.py": "from hdai_lessons.core.ops import f\n",
        "rlvr/losses.py": "from ..cat import weights\n",                                # relative, 01 -> 02
        "cat/weights.py": "from hdai_lessons.rlvr.losses import x\n",
    })
    g = import_graph(pkg)
    assert upward_imports(g) == ["hdai_lessons.core.ops -> hdai_lessons.lm.sampling",
                                 "hdai_lessons.rlvr.losses -> hdai_lessons.cat.weights"]
    assert sorted(cycles(_package_init_edges(g))) == [
        ["hdai_lessons.cat.weights", "hdai_lessons.rlvr.losses"],
        ["hdai_lessons.core.ops", "hdai_lessons.lm.sampling"]]


def test_checker_accepts_downward_and_earlier_module_imports(tmp_path):
    pkg = _write(tmp_path, {
        "__init__.py": "from hdai_lessons.cat import weights\n", "core/__init__.py": "", "rlvr/__init__.py": "",
        "cat/__init__.py": "", "core/ops.py": "",
        "rlvr/losses.py": "from hdai_lessons.core import ops\n",
        "cat/weights.py": "from hdai_lessons.rlvr.losses import x\nfrom . import helpers\n", "cat/helpers.py": "",
    })
    g = import_graph(pkg)
    assert upward_imports(g) == [] and cycles(_package_init_edges(g)) == []
