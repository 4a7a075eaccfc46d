"""Millstream's layers, checked on every import in the source tree.

A layer may import only from layers at or below its own rank, and no module may take
part in an import cycle. For the layers every import counts — at module level, inside
functions, and under ``if TYPE_CHECKING:`` — because a lazy import still ties the
importer to the imported module (it only moves the failure from import time to the first
call), and a ``TYPE_CHECKING`` import means the annotations are written against that
layer. For cycles, lazy imports count too, but ``TYPE_CHECKING`` imports do not: they are
never executed (every module has ``from __future__ import annotations``), and they are
how a task names the DAG that holds it without importing the module that defines DAGs.

Run ``python tests/test_layers.py`` to print the whole graph.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "millstream"
#: Alembic's scripts are loaded by alembic from their files, never imported as modules.
SKIP = ("millstream.store.migrations",)

#: Lowest first. Layers sharing a rank may import each other (a cycle is still caught).
LAYER_ORDER: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("errors", "settings"),
    ("sdk",),
    ("facade",),
    ("store",),
    ("worker",),
    ("executors",),
    ("scheduler",),
    ("control", "testing"),
    ("api",),
    ("cli",),
)
RANK: dict[str, int] = {layer: rank for rank, group in enumerate(LAYER_ORDER) for layer in group}

#: The facade (``millstream/__init__.py``) hands the authoring layer its engine: these
#: are the only higher modules it may name, and only inside a function, so that
#: ``import millstream`` stays as light as the authoring API itself.
FACADE_LAZY_TARGETS = frozenset({"millstream.testing", "millstream.scheduler.parsing"})

#: The authoring and pure-logic layers run inside DAG files and in tests without a
#: database; they must not reach the engine in any form, lazy or TYPE_CHECKING.
ENGINE = frozenset({"store", "scheduler", "executors", "worker", "control", "testing", "api", "cli"})
SEALED: Mapping[str, frozenset[str]] = {
    "core": ENGINE | {"facade"},
    "sdk": ENGINE | {"facade"},
    "worker": frozenset({"scheduler"}),
}

#: Lower-to-higher imports the order above does not yet hold to, each with why. A debt
#: to pay off, not a licence: empty today, and a stale entry fails.
KNOWN_UPWARD: Mapping[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    path: str
    line: int
    src: str
    dst: str
    lazy: bool  # inside a function body
    type_only: bool  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        kind = " (lazy)" if self.lazy else " (TYPE_CHECKING)" if self.type_only else ""
        return f"{self.path}:{self.line}: {self.src} imports {self.dst}{kind}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path, package: str = PACKAGE, skip: Iterable[str] = SKIP) -> dict[str, Path]:
    """Module name -> file, for every module of ``package`` under ``root`` (a src dir)."""
    skip = tuple(skip)
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        name = module_name(path, root)
        if any(name == s or name.startswith(s + ".") for s in skip):
            continue
        found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, lazy: bool, type_only: bool
) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy, type_only
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, True, type_only)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), lazy, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), lazy, type_only)
        else:
            yield from _walk(child, lazy, type_only)


def _resolve(target: str, modules: Mapping[str, Path]) -> str:
    """The longest known module that ``target`` names (``a.b.func`` -> ``a.b``)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target


def collect_imports(modules: Mapping[str, Path], package: str = PACKAGE) -> list[Edge]:
    """Every import from one of ``modules`` to another, wherever it is written."""
    edges = []
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        here = name if is_pkg else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, lazy, type_only in _walk(tree, False, False):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base_parts = here.split(".")
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # ``from pkg import sub`` names the submodule when there is one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in dict.fromkeys(targets):
                if target != package and not target.startswith(package + "."):
                    continue
                dst = _resolve(target, modules)
                if dst and dst != name:
                    edges.append(Edge(str(path), node.lineno, name, dst, lazy, type_only))
    return edges


def layer_of(module: str, package: str = PACKAGE) -> str:
    """``millstream.store.runs`` -> ``store``; the package itself is the ``facade``."""
    if module == package:
        return "facade"
    return module.split(".")[1]


def upward_edges(
    edges: Iterable[Edge], rank: Mapping[str, int] = RANK, known: Iterable[tuple[str, str]] = ()
) -> list[Edge]:
    """Imports from a lower layer to a higher one, and the facade's non-lazy reach upward."""
    known = set(known)
    bad = []
    for e in edges:
        a, b = layer_of(e.src), layer_of(e.dst)
        if rank[b] <= rank[a] or (e.src, e.dst) in known:
            continue
        if a == "facade" and e.dst in FACADE_LAZY_TARGETS and e.lazy and not e.type_only:
            continue
        bad.append(e)
    return bad


def sealed_edges(edges: Iterable[Edge], sealed: Mapping[str, frozenset[str]] = SEALED) -> list[Edge]:
    return [e for e in edges if layer_of(e.dst) in sealed.get(layer_of(e.src), frozenset())]


@dataclass(frozen=True)
class Cycle:
    members: tuple[str, ...]  # every module of one strongly connected component, sorted
    chain: tuple[str, ...]  # one loop through it, from its first member back to that member
    edges: tuple[Edge, ...]  # every import between two members

    def __str__(self) -> str:
        lines = [" -> ".join(self.chain), f"  {len(self.members)} modules, imports between them:"]
        lines += [f"    {e}" for e in self.edges]
        return "\n".join(lines)


def runtime_edges(edges: Iterable[Edge]) -> list[Edge]:
    """The imports that run: module-level and lazy ones, not those under TYPE_CHECKING."""
    return [e for e in edges if not e.type_only]


def cycles(edges: Iterable[Edge]) -> list[Cycle]:
    """Strongly connected components of more than one module (Tarjan)."""
    kept = list(edges)
    graph: dict[str, set[str]] = {}
    for e in kept:
        graph.setdefault(e.src, set()).add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[Cycle] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the module count
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                members = tuple(sorted(comp))
                inside = tuple(e for e in kept if e.src in comp and e.dst in comp)
                found.append(Cycle(members, _chain(members, graph), inside))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found, key=lambda c: c.members)


def _chain(members: tuple[str, ...], graph: Mapping[str, set[str]]) -> tuple[str, ...]:
    """The shortest loop from the component's first module back to it (BFS)."""
    inside, start = set(members), members[0]
    prev: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & inside):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return (*reversed(path), start)
            if w not in prev:
                prev[w] = v
                todo.append(w)
    raise AssertionError(f"no loop through {start}: not a strongly connected component")


# -- the tree itself ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    return discover(SRC)


@pytest.fixture(scope="module")
def edges(modules: dict[str, Path]) -> list[Edge]:
    return collect_imports(modules)


def test_every_module_has_a_layer(modules: dict[str, Path]) -> None:
    unknown = sorted(m for m in modules if layer_of(m) not in RANK)
    assert unknown == [], f"place these in LAYER_ORDER: {unknown}"


def test_the_checker_sees_the_imports_it_must(edges: list[Edge]) -> None:
    # Guards the guard: if parsing silently found nothing, every other test would pass.
    pairs = {(e.src, e.dst) for e in edges}
    assert ("millstream.testing", "millstream.scheduler.loop") in pairs
    assert ("millstream.testing", "millstream.control") in pairs  # ``from millstream import control``
    assert any(e.lazy for e in edges)
    assert any(e.type_only for e in edges)


def test_no_layer_imports_upward(edges: list[Edge]) -> None:
    bad = upward_edges(edges, known=KNOWN_UPWARD)
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(map(str, bad))


def test_core_and_sdk_never_reach_the_engine(edges: list[Edge]) -> None:
    bad = sealed_edges(edges)
    assert not bad, "sealed layers importing what they must not, even lazily:\n" + "\n".join(map(str, bad))


def test_no_import_cycles(edges: list[Edge]) -> None:
    found = cycles(runtime_edges(edges))
    assert not found, "import cycles:\n" + "\n".join(map(str, found))


def test_known_upward_list_is_not_stale(edges: list[Edge]) -> None:
    pairs = {(e.src, e.dst) for e in edges}
    stale = sorted(set(KNOWN_UPWARD) - pairs)
    assert not stale, f"no longer imported, remove from KNOWN_UPWARD: {stale}"


def test_import_millstream_does_not_load_the_engine() -> None:
    # The facade registers the engine for dag.test() and load_dags(); it must do it lazily.
    code = "import sys, millstream; print(' '.join(sorted(m for m in sys.modules if m.startswith('millstream'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {layer_of(m) for m in out.split()}
    assert loaded <= {"facade", "core", "errors", "settings", "sdk"}, sorted(loaded)


# -- the checker on a made-up package -------------------------------------------------------------


def _fake_package(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        p = tmp_path / PACKAGE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return discover(tmp_path, skip=())


def test_checker_reports_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    modules = _fake_package(
        tmp_path,
        {
            "__init__.py": "def _run():\n    from millstream import testing\n",
            "core/__init__.py": "",
            "core/model.py": "from . import states\n",
            "core/states.py": "from millstream.core.model import X\n",
            "sdk/__init__.py": "",
            "sdk/dag.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from millstream.testing import RunResult\n"
                "def test():\n"
                "    from ..store import runs\n"
            ),
            "store/__init__.py": "",
            "store/runs.py": "import millstream.core.model\n",
            "testing.py": "from millstream.sdk import dag\n",
        },
    )
    edges = collect_imports(modules)
    assert {(e.src, e.dst) for e in edges} == {
        ("millstream", "millstream.testing"),
        ("millstream.core.model", "millstream.core.states"),
        ("millstream.core.states", "millstream.core.model"),
        ("millstream.sdk.dag", "millstream.testing"),
        ("millstream.sdk.dag", "millstream.store.runs"),
        ("millstream.store.runs", "millstream.core.model"),
        ("millstream.testing", "millstream.sdk.dag"),
    }
    up = [str(e).replace(str(tmp_path), "") for e in upward_edges(edges)]
    assert up == [
        f"/{PACKAGE}/sdk/dag.py:3: millstream.sdk.dag imports millstream.testing (TYPE_CHECKING)",
        f"/{PACKAGE}/sdk/dag.py:5: millstream.sdk.dag imports millstream.store.runs (lazy)",
    ]
    assert [e.dst for e in sealed_edges(edges)] == ["millstream.testing", "millstream.store.runs"]
    found = cycles(edges)
    assert [c.chain for c in found] == [
        ("millstream.core.model", "millstream.core.states", "millstream.core.model"),
        ("millstream.sdk.dag", "millstream.testing", "millstream.sdk.dag"),
    ]
    text = str(found[0]).replace(str(tmp_path), "")
    assert f"/{PACKAGE}/core/model.py:1: millstream.core.model imports millstream.core.states" in text
    assert f"/{PACKAGE}/core/states.py:1: millstream.core.states imports millstream.core.model" in text
    # The sdk cycle is closed only by a TYPE_CHECKING import, which never runs.
    assert [c.members for c in cycles(runtime_edges(edges))] == [
        ("millstream.core.model", "millstream.core.states")
    ]


def test_checker_reports_a_cycle_across_layers_from_an_edge_list() -> None:
    def e(a: str, b: str) -> Edge:
        return Edge("x.py", 1, a, b, lazy=False, type_only=False)

    edges = [
        e("millstream.sdk.dag", "millstream.core.model"),
        e("millstream.worker.runner", "millstream.scheduler.loop"),
        e("millstream.scheduler.loop", "millstream.executors.base"),
        e("millstream.executors.base", "millstream.worker.runner"),
    ]
    assert [(x.src, x.dst) for x in upward_edges(edges)] == [
        ("millstream.worker.runner", "millstream.scheduler.loop")
    ]
    assert upward_edges(edges, known={("millstream.worker.runner", "millstream.scheduler.loop")}) == []
    assert [x.dst for x in sealed_edges(edges)] == ["millstream.scheduler.loop"]
    assert [c.chain for c in cycles(edges)] == [
        (
            "millstream.executors.base",
            "millstream.worker.runner",
            "millstream.scheduler.loop",
            "millstream.executors.base",
        )
    ]


def test_facade_may_reach_its_engine_only_lazily() -> None:
    def e(dst: str, lazy: bool) -> Edge:
        return Edge("__init__.py", 1, PACKAGE, dst, lazy=lazy, type_only=False)

    assert upward_edges([e("millstream.testing", lazy=True)]) == []
    assert len(upward_edges([e("millstream.testing", lazy=False)])) == 1
    assert len(upward_edges([e("millstream.store.runs", lazy=True)])) == 1


if __name__ == "__main__":
    found = collect_imports(discover(SRC))
    for edge in sorted(found, key=lambda x: (x.src, x.dst)):
        print(edge)
    print("\nlayer graph:")
    layer_edges: dict[tuple[str, str], int] = {}
    for edge in found:
        key = (layer_of(edge.src), layer_of(edge.dst))
        if key[0] != key[1]:
            layer_edges[key] = layer_edges.get(key, 0) + 1
    for (a, b), n in sorted(layer_edges.items(), key=lambda kv: (RANK[kv[0][0]], kv[0])):
        print(f"  {a:10} -> {b:10} {n:3}{'   UPWARD' if RANK[b] > RANK[a] else ''}")
    print("\nupward (including known):", *upward_edges(found), sep="\n  ")
    print("\nsealed:", *sealed_edges(found), sep="\n  ")
    print("\ncycles, TYPE_CHECKING included:", *cycles(found), sep="\n  ")
    print("\ncycles of imports that run:", *cycles(runtime_edges(found)), sep="\n  ")
