"""Layouts for the SVG pictures of the web UI: a DAG's graph, a run's Gantt chart and the
asset graph. Pure functions from specs and rows to boxes and lines; templates draw them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from millstream.core.model import DagSpec

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 200, 40, 60, 22, 20

#: The state a box shows when its instances disagree: the one that most needs a look.
STATE_PRIORITY = (
    "failed",
    "upstream_failed",
    "up_for_retry",
    "running",
    "queued",
    "scheduled",
    "up_for_reschedule",
    "deferred",
    "none",
    "skipped",
    "removed",
    "success",
)


def summary_state(counts: Mapping[str, int]) -> str | None:
    for s in STATE_PRIORITY:
        if counts.get(s):
            return s
    return next(iter(counts), None)


@dataclass
class Node:
    id: str
    label: str
    kind: str  # task | setup | teardown | asset | dag
    x: float = 0
    y: float = 0
    mapped: bool = False
    state: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    href: str | None = None
    operator: str | None = None  # shown under the label, as Airflow's graph does
    color: str | None = None  # the operator's ui_color (boxes without a state)


@dataclass
class Edge:
    path: str
    kind: str  # dep | asset | setup
    label: str | None = None  # an edge Label, drawn at the arrow's middle
    x: float = 0
    y: float = 0


def _labelled(a: Node, b: Node, label: str | None) -> dict[str, object]:
    if label is None:
        return {}
    return {"label": label, "x": (a.x + NODE_W + b.x) / 2, "y": (a.y + b.y + NODE_H) / 2 - 4}


@dataclass
class Picture:
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float


def _curve(a: Node, b: Node) -> str:
    x1, y1 = a.x + NODE_W, a.y + NODE_H / 2
    x2, y2 = b.x, b.y + NODE_H / 2
    if abs(y1 - y2) < 1 and x2 - x1 > COL_GAP + 1:
        # Skips columns on the same row (a setup to its teardown): pass under the boxes
        # in between instead of through them.
        sx, ex, low = a.x + NODE_W / 2, b.x + NODE_W / 2, a.y + NODE_H
        return f"M{sx:.0f},{low:.0f} C{sx:.0f},{low + 34:.0f} {ex:.0f},{low + 34:.0f} {ex:.0f},{low:.0f}"
    if x2 <= x1:  # same column (an asset beside its producer): go round the right side
        x2 = b.x + NODE_W
        mid = max(x1, x2) + COL_GAP / 2
        return f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    mid = (x1 + x2) / 2
    return f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"


def _place(columns: list[list[Node]]) -> tuple[float, float]:
    height = max((len(c) for c in columns), default=0) * (NODE_H + ROW_GAP)
    for i, col in enumerate(columns):
        offset = (height - len(col) * (NODE_H + ROW_GAP)) / 2
        for j, n in enumerate(col):
            n.x = PAD + i * (NODE_W + COL_GAP)
            n.y = PAD + offset + j * (NODE_H + ROW_GAP)
    # The bottom margin leaves room for edges that pass under a row.
    return PAD * 2 + len(columns) * (NODE_W + COL_GAP) - COL_GAP, PAD * 2 + height - ROW_GAP + 24


def topological(spec: DagSpec) -> list[str]:
    """Task ids, each after its upstreams (ties in definition order): the grid's row order."""
    placed: list[str] = []
    seen: set[str] = set()
    pending = [t.task_id for t in spec.tasks]
    while pending:
        rest = []
        for task_id in pending:
            if all(u in seen for u in spec.task(task_id).upstream):
                placed.append(task_id)
                seen.add(task_id)
            else:
                rest.append(task_id)
        if len(rest) == len(pending):  # cannot happen for a parsed DAG; do not loop for ever
            placed += rest
            break
        pending = rest
    return placed


def dag_graph(spec: DagSpec, counts: Mapping[str, Mapping[str, int]] | None = None) -> Picture:
    """Tasks in columns by depth; assets the DAG is scheduled on in a column before them and
    assets its tasks update after them. ``counts``: task_id -> state -> instances (a run)."""
    counts = counts or {}
    depth: dict[str, int] = {}
    ordered = [spec.task(i) for i in topological(spec)]
    for t in ordered:
        depth[t.task_id] = 1 + max((depth.get(u, 0) for u in t.upstream), default=0)
    nodes: dict[str, Node] = {}
    trigger_assets = sorted(_asset_names(spec.asset_trigger["condition"])) if spec.asset_trigger else []
    inlet_assets = sorted({k for t in spec.tasks for k in t.inlets} - {f"asset:{a}" for a in trigger_assets})
    first = [Node(f"asset:{a}", a, "asset") for a in trigger_assets] + [
        Node(k, k.split(":", 1)[1], "asset") for k in inlet_assets
    ]
    last_depth = max(depth.values(), default=0)
    columns: list[list[Node]] = [first] if first else []
    base = len(columns) - 1
    for _ in range(last_depth):
        columns.append([])
    for t in ordered:
        kind = "setup" if t.is_setup else "teardown" if t.is_teardown else "task"
        c = dict(counts.get(t.task_id, {}))
        n = Node(
            t.task_id,
            t.display_name or t.task_id,
            kind,
            mapped=t.is_mapped,
            counts=c,
            state=summary_state(c),
            operator=t.operator,
            color=t.ui_color,
        )
        nodes[t.task_id] = n
        columns[base + depth[t.task_id]].append(n)
    outlets = sorted({k for t in spec.tasks for k in t.outlets})
    if outlets:
        columns.append([Node(k, k.split(":", 1)[1], "asset") for k in outlets])
    for n in first + (columns[-1] if outlets else []):
        nodes.setdefault(n.id, n)
    width, height = _place([c for c in columns if c] or [[]])
    edges: list[Edge] = []
    for t in spec.tasks:
        for u in t.upstream:
            setup_link = spec.task(u).is_setup and t.is_teardown
            edges.append(
                Edge(
                    _curve(nodes[u], nodes[t.task_id]),
                    "setup" if setup_link else "dep",
                    **_labelled(nodes[u], nodes[t.task_id], t.edge_labels.get(u)),  # type: ignore[arg-type]
                )
            )
        for k in t.outlets:
            edges.append(Edge(_curve(nodes[t.task_id], nodes[k]), "asset"))
        for k in t.inlets:
            if k in nodes:
                edges.append(Edge(_curve(nodes[k], nodes[t.task_id]), "asset"))
    roots = [t for t in spec.tasks if not t.upstream]
    for a in trigger_assets:
        for t in roots:
            edges.append(Edge(_curve(nodes[f"asset:{a}"], nodes[t.task_id]), "asset"))
    return Picture(list(nodes.values()), edges, width, height)


def _asset_names(cond: Mapping[str, Any]) -> set[str]:
    ((op, arg),) = cond.items()
    if op == "asset":
        return {str(arg)}
    if op == "alias":
        return set()
    return set().union(*(_asset_names(c) for c in arg))


def asset_graph(assets: Sequence[Mapping[str, Any]], dag_ids: Sequence[str] = ()) -> Picture:
    """Producing tasks -> assets -> DAGs scheduled on them, in three columns."""
    producers = sorted({p for a in assets for p in a["producers"]})
    consumers = sorted({c for a in assets for c in a["consumers"]})

    def dag_of(producer: str) -> str:
        # "dag.task", where either may hold dots: the longest known DAG id that fits.
        fits = [d for d in dag_ids if producer.startswith(d + ".")]
        return max(fits, key=len) if fits else producer.split(".", 1)[0]

    left = [Node(f"p:{p}", p, "task", href=f"/dags/{quote(dag_of(p), safe='')}/graph") for p in producers]
    mid = [Node(f"a:{a['name']}", a["name"], "asset") for a in assets]
    right = [Node(f"c:{c}", c, "dag", href=f"/dags/{quote(c, safe='')}") for c in consumers]
    width, height = _place([c for c in (left, mid, right) if c] or [[]])
    by_id = {n.id: n for n in left + mid + right}
    edges = []
    for a in assets:
        for p in a["producers"]:
            edges.append(Edge(_curve(by_id[f"p:{p}"], by_id[f"a:{a['name']}"]), "asset"))
        for c in a["consumers"]:
            edges.append(Edge(_curve(by_id[f"a:{a['name']}"], by_id[f"c:{c}"]), "dep"))
    return Picture(left + mid + right, edges, width, height)


@dataclass
class GridRow:
    kind: str  # group | task
    id: str  # the group id, or the task id
    depth: int  # how many groups it is inside
    groups: list[str]  # the groups it is inside, outermost first (what folds it)
    task: Any = None


def _ancestors(group_id: str | None) -> list[str]:
    """``outer.inner`` -> [outer, outer.inner]: groups nest by their prefixed ids (a group
    made with ``prefix_group_id=False`` shows as a group of its own, not nested)."""
    if not group_id:
        return []
    parts = group_id.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def grid_rows(tasks: Sequence[Any]) -> list[GridRow]:
    """The grid's rows: tasks in the given (topological) order, except that the tasks of a
    group are kept together, under a header row for the group and each group it is in,
    where the group first appears."""
    root: list[Any] = []  # items: ("task", t) or ("group", id, children)
    groups: dict[str, list[Any]] = {}
    for t in tasks:
        siblings = root
        for g in _ancestors(t.group_id):
            if g not in groups:
                groups[g] = []
                siblings.append(("group", g, groups[g]))
            siblings = groups[g]
        siblings.append(("task", t))
    rows: list[GridRow] = []

    def walk(items: list[Any], inside: list[str]) -> None:
        for item in items:
            if item[0] == "group":
                rows.append(GridRow("group", item[1], len(inside), list(inside)))
                walk(item[2], [*inside, item[1]])
            else:
                rows.append(GridRow("task", item[1].task_id, len(inside), list(inside), item[1]))

    walk(root, [])
    return rows


@dataclass
class Bar:
    task_id: str
    x: float
    width: float
    y: float
    state: str | None
    instances: int
    label: str


def gantt(
    spans: Sequence[Mapping[str, Any]],
    order: Sequence[str],
    counts: Mapping[str, Mapping[str, int]],
    start: datetime | None,
    now: datetime,
    width: float = 760,
    row: float = 24,
) -> tuple[list[Bar], float, float]:
    """One bar per task from its first instance's start to its last one's end (or now).
    Returns (bars, seconds the axis covers, height)."""
    by_task = {s["task_id"]: s for s in spans}
    starts = [s["start_date"] for s in spans if s["start_date"]]
    # A cleared run's start moves to the clear: its earlier bars must not fall off the left.
    t0 = min([start, *starts]) if start else (min(starts) if starts else now)
    ends = [s["end_date"] or now for s in spans if s["start_date"]]
    total = max([(e - t0).total_seconds() for e in ends] + [0.001])
    bars = []
    for i, task_id in enumerate(order):
        s = by_task.get(task_id)
        c = counts.get(task_id, {})
        n = s["instances"] if s else 0
        label = f"{task_id} \u00d7{n}" if n > 1 else task_id
        if not s or not s["start_date"]:
            bars.append(Bar(task_id, 0, 0, i * row, summary_state(c), n, label))
            continue
        a = (s["start_date"] - t0).total_seconds()
        b = ((s["end_date"] or now) - t0).total_seconds()
        x = a / total * width
        bars.append(Bar(task_id, x, max((b - a) / total * width, 2), i * row, summary_state(c), n, label))
    return bars, total, len(order) * row
