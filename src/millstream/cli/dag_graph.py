"""A DAG's graph as text: Graphviz DOT (what ``airflow dags show`` prints) and Mermaid.

Pure functions from a :class:`DagSpec` to a string, so the output is the same whether the
spec came from the store or a file. Task groups become clusters (DOT) or subgraphs
(Mermaid), nested by their dotted ids; a setup task's edge to its teardown is dashed, as
the web UI draws it. Tasks and edges are sorted, so the text diffs well between versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from millstream.core.model import DagSpec, TaskSpec

#: Airflow's fill for a task without its own ``ui_color`` (BaseOperator's white).
DEFAULT_FILL = "#ffffff"
GROUP_FILL = "#6495ed7f"  # partially transparent CornflowerBlue, as Airflow's clusters

_BARE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOT_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}


@dataclass
class _Group:
    group_id: str  # "" for the DAG itself
    tasks: list[TaskSpec] = field(default_factory=list)
    children: dict[str, _Group] = field(default_factory=dict)


def _tree(spec: DagSpec) -> _Group:
    """Tasks by group; ``outer.inner`` nests inside ``outer``."""
    root = _Group("")
    for t in spec.tasks:
        node = root
        if t.group_id:
            parts = t.group_id.split(".")
            for i in range(len(parts)):
                gid = ".".join(parts[: i + 1])
                node = node.children.setdefault(gid, _Group(gid))
        node.tasks.append(t)
    return root


def _label(task: TaskSpec) -> str:
    """What the box says: the display name, else the id without its group prefix."""
    if task.display_name:
        return task.display_name
    if task.group_id and task.task_id.startswith(task.group_id + "."):
        return task.task_id[len(task.group_id) + 1 :]
    return task.task_id


def edges(spec: DagSpec) -> list[tuple[str, str, str | None, bool]]:
    """(upstream, downstream, edge label, setup-to-teardown) for every dependency, sorted."""
    out = []
    for t in spec.tasks:
        for u in t.upstream:
            up = spec.task(u)
            out.append((u, t.task_id, t.edge_labels.get(u), up.is_setup and t.is_teardown))
    return sorted(out, key=lambda e: (e[0], e[1]))


def _q(text: str) -> str:
    """A DOT ID: bare when DOT allows it, else double-quoted."""
    if _BARE_ID.fullmatch(text) and text.lower() not in _DOT_KEYWORDS:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**kv: str) -> str:
    return " ".join(f"{k}={_q(v)}" for k, v in kv.items())


def to_dot(spec: DagSpec) -> str:
    """The DAG as Graphviz DOT source, laid out left to right like ``airflow dags show``."""
    lines = [
        f"digraph {_q(spec.dag_id)} {{",
        f"\tgraph [{_attrs(label=spec.dag_id, labelloc='t', rankdir='LR')}]",
    ]

    def draw(group: _Group, depth: int) -> None:
        pad = "\t" * depth
        items: list[tuple[str, TaskSpec | _Group]] = [(t.task_id, t) for t in group.tasks]
        items += [(g.group_id, g) for g in group.children.values()]
        for _, item in sorted(items, key=lambda i: i[0]):
            if isinstance(item, _Group):
                name = item.group_id.rsplit(".", 1)[-1]
                lines.append(f"{pad}subgraph {_q('cluster_' + item.group_id)} {{")
                lines.append(
                    f"{pad}\t{_attrs(color='#000000', fillcolor=GROUP_FILL, label=name, shape='rectangle', style='filled')}"
                )
                draw(item, depth + 1)
                lines.append(f"{pad}}}")
                continue
            style = "filled,rounded" + (",bold" if item.is_setup or item.is_teardown else "")
            role = {"shape": "rectangle"}
            if item.is_setup:
                role["tooltip"] = "setup"
            elif item.is_teardown:
                role["tooltip"] = "teardown"
            attrs = _attrs(
                color="#000000",
                fillcolor=item.ui_color or DEFAULT_FILL,
                label=_label(item),
                style=style,
                **role,
            )
            lines.append(f"{pad}{_q(item.task_id)} [{attrs}]")

    draw(_tree(spec), 1)
    for up, down, label, setup_edge in edges(spec):
        extra = {}
        if label:
            extra["label"] = label
        if setup_edge:
            extra["style"] = "dashed"
        suffix = f" [{_attrs(**extra)}]" if extra else ""
        lines.append(f"\t{_q(up)} -> {_q(down)}{suffix}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mq(text: str) -> str:
    """Text inside a Mermaid ``"..."`` label (quotes and markup characters as entities)."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(spec: DagSpec) -> str:
    """The DAG as a Mermaid flowchart (for Markdown on GitHub, GitLab and docs sites).

    Node ids are ``t0, t1, …`` because Mermaid ids cannot hold every character a task id
    may; the task id is the label (with the display name, when there is one)."""
    ids = {t.task_id: f"t{i}" for i, t in enumerate(sorted(spec.tasks, key=lambda t: t.task_id))}
    group_ids: dict[str, str] = {}
    lines = ["flowchart LR"]

    def draw(group: _Group, depth: int) -> None:
        pad = "    " * depth
        items: list[tuple[str, TaskSpec | _Group]] = [(t.task_id, t) for t in group.tasks]
        items += [(g.group_id, g) for g in group.children.values()]
        for _, item in sorted(items, key=lambda i: i[0]):
            if isinstance(item, _Group):
                gid = group_ids.setdefault(item.group_id, f"g{len(group_ids)}")
                lines.append(f'{pad}subgraph {gid}["{_mq(item.group_id.rsplit(".", 1)[-1])}"]')
                draw(item, depth + 1)
                lines.append(f"{pad}end")
                continue
            text = _label(item) if item.display_name is None else f"{item.display_name} ({item.task_id})"
            if item.is_mapped:
                text += " [ ]"
            lines.append(f'{pad}{ids[item.task_id]}["{_mq(text)}"]')

    draw(_tree(spec), 1)
    for up, down, label, setup_edge in edges(spec):
        arrow = "-.->" if setup_edge else "-->"
        text = f'|"{_mq(label)}"|' if label else ""
        lines.append(f"    {ids[up]} {arrow}{text} {ids[down]}")
    setups = [ids[t.task_id] for t in spec.tasks if t.is_setup]
    teardowns = [ids[t.task_id] for t in spec.tasks if t.is_teardown]
    if setups:
        lines += ["    classDef setup stroke-width:3px,stroke:#2e7d32", f"    class {','.join(setups)} setup"]
    if teardowns:
        lines += [
            "    classDef teardown stroke-width:3px,stroke:#6a1b9a",
            f"    class {','.join(teardowns)} teardown",
        ]
    return "\n".join(lines) + "\n"
