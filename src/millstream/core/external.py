"""Checks across DAGs that need only their specs: a cross-DAG sensor or marker that names
a task (or task group) the other DAG does not have is worth a warning when the DAGs are
loaded, long before the sensor fails at run time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from millstream.core.model import DagSpec


@dataclass(frozen=True)
class ExternalWarning:
    dag_id: str
    task_id: str
    lineno: int | None
    message: str


def external_warnings(
    specs: Iterable[DagSpec], other: Callable[[str], DagSpec | None]
) -> list[ExternalWarning]:
    """Warnings for the tasks of ``specs`` that point at tasks another DAG lacks;
    ``other(dag_id)`` gives that DAG's spec, or None when it is not known (no warning:
    it may simply be deployed later)."""
    out = []
    for spec in specs:
        for t in spec.tasks:
            ext = t.external
            if not ext or ext.get("kind") not in ("sensor", "marker") or "{{" in str(ext.get("dag_id")):
                continue
            target = other(ext["dag_id"])
            if target is None:
                continue
            missing = [x for x in ext.get("task_ids") or [] if "{{" not in x and not target.has_task(x)]
            group = ext.get("group_id")
            what = f"{t.operator or 'task'} {t.task_id!r} of DAG {spec.dag_id!r}"
            if missing:
                out.append(
                    ExternalWarning(
                        spec.dag_id,
                        t.task_id,
                        t.lineno,
                        f"{what} points at task(s) {missing} that DAG {ext['dag_id']!r} does not have",
                    )
                )
            if group and not any(
                x.group_id == group or (x.group_id or "").startswith(group + ".") for x in target.tasks
            ):
                out.append(
                    ExternalWarning(
                        spec.dag_id,
                        t.task_id,
                        t.lineno,
                        f"{what} points at task group {group!r} that DAG {ext['dag_id']!r} does not have",
                    )
                )
    return out
