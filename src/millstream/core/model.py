"""Plain, frozen descriptions of DAGs and tasks: what the scheduler knows about a DAG.

The SDK turns user code into a :class:`DagSpec`; the store keeps it as JSON (one row per
version); the scheduler plans runs from it without importing user code. Every field
round-trips through :meth:`DagSpec.to_json` / :meth:`DagSpec.from_json` (a test pins
this), so adding a field means adding it to both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from millstream.core.trigger_rules import TriggerRule

#: map_index of a task instance that is not (yet) mapped.
UNMAPPED = -1


@dataclass(frozen=True)
class MapSource:
    """Where one expanded argument's values come from, as far as their count matters.

    ``kind`` is ``value`` for an upstream task's output (``task_id``, ``key``; its
    length is known once that task succeeded, or once a mapped task expanded) or a
    literal list/dict written in the DAG (``length``); ``zip``, ``zip_longest`` and
    ``concat`` combine ``parts``. ``.map(fn)`` does not change a length, so it does not
    appear here. ``arg`` is the argument name, ``**`` for ``expand_kwargs``.
    """

    arg: str = ""
    task_id: str | None = None
    key: str = "return_value"
    length: int | None = None
    kind: str = "value"
    parts: tuple[MapSource, ...] = ()

    def task_ids(self) -> list[str]:
        """Every upstream task whose output this source reads."""
        if self.kind == "value":
            return [self.task_id] if self.task_id else []
        return [t for p in self.parts for t in p.task_ids()]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MapSource:
        kw = dict(d)
        kw["parts"] = tuple(cls.from_dict(p) for p in kw.get("parts", ()))
        return cls(**kw)


@dataclass(frozen=True)
class InputRef:
    """An argument filled from an upstream task's output (an XCom reference)."""

    arg: str
    task_id: str
    key: str = "return_value"


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    kind: str = "python"  # python | branch | short_circuit | bash | sensor
    upstream: tuple[str, ...] = ()
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    retries: int = 0
    retry_delay: float = 300.0
    retry_exponential_backoff: float = 0.0  # 0 = constant delay, else the multiplier
    max_retry_delay: float | None = None
    execution_timeout: float | None = None
    pool: str | None = None
    pool_slots: int = 1
    queue: str | None = None  # the Celery queue its instances are sent to (None: the default)
    priority_weight: int = 1
    max_active_tis_per_dagrun: int | None = None
    max_active_tis_per_dag: int | None = None
    map_sources: tuple[MapSource, ...] = ()
    # Mapped upstream tasks whose instance i feeds this task's instance i (chained mapping,
    # tasks of one mapped group): instance i may start as soon as theirs succeeded.
    aligned: tuple[str, ...] = ()
    inputs: tuple[InputRef, ...] = ()
    map_index_template: str | None = None
    group_id: str | None = None
    is_setup: bool = False
    is_teardown: bool = False
    on_failure_fail_dagrun: bool = False  # a teardown whose failure fails the run
    callbacks: tuple[str, ...] = ()  # names of the on_*_callback arguments that are set
    deadline: Mapping[str, Any] | None = None  # {"reference": ..., "seconds": ...}
    multiple_outputs: bool = False
    ignore_downstream_trigger_rules: bool = True
    outlets: tuple[str, ...] = ()  # asset keys (``asset:NAME``, ``alias:NAME``) it updates
    inlets: tuple[str, ...] = ()  # asset keys whose events it may read
    doc: str | None = None
    lineno: int | None = None
    display_name: str | None = None  # task_display_name: shown instead of the id
    # Wait for this task (and, with wait_for_downstream, its direct downstream tasks) to
    # have succeeded in the previous run by logical date.
    depends_on_past: bool = False
    ignore_first_depends_on_past: bool = False
    wait_for_downstream: bool = False
    operator: str | None = None  # the operator class's name (BashOperator, a custom one)
    ui_color: str | None = None  # its ui_color: the graph box's fill
    # template_fields_renderers: field -> how the Rendered tab shows it (bash, sql, json, py, …)
    renderers: Mapping[str, str] = field(default_factory=dict)
    edge_labels: Mapping[str, str] = field(default_factory=dict)  # upstream id -> its edge's Label
    # What a cross-DAG operator points at: {"kind": "trigger" | "sensor" | "marker",
    # "dag_id": ..., "task_ids": [...], "group_id": ..., "recursion_depth": ...}.
    external: Mapping[str, Any] | None = None

    @property
    def is_mapped(self) -> bool:
        return bool(self.map_sources)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trigger_rule"] = str(self.trigger_rule)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["upstream"] = tuple(kw.get("upstream", ()))
        kw["trigger_rule"] = TriggerRule(kw.get("trigger_rule", "all_success"))
        kw["map_sources"] = tuple(MapSource.from_dict(m) for m in kw.get("map_sources", ()))
        kw["aligned"] = tuple(kw.get("aligned", ()))
        kw["callbacks"] = tuple(kw.get("callbacks", ()))
        kw["inputs"] = tuple(InputRef(**m) for m in kw.get("inputs", ()))
        kw["outlets"] = tuple(kw.get("outlets", ()))
        kw["inlets"] = tuple(kw.get("inlets", ()))
        kw["renderers"] = dict(kw.get("renderers") or {})
        return cls(**kw)


@dataclass(frozen=True)
class DagSpec:
    dag_id: str
    tasks: tuple[TaskSpec, ...]
    fileloc: str = ""
    timetable: Mapping[str, Any] = field(default_factory=lambda: {"type": "none"})
    start_date: str | None = None  # ISO 8601, timezone-aware
    end_date: str | None = None
    catchup: bool = False
    max_active_runs: int = 16
    max_active_tasks: int = 16
    dagrun_timeout: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    description: str | None = None
    doc: str | None = None
    callbacks: tuple[str, ...] = ()  # DAG-level on_success_callback / on_failure_callback set
    retries: int = 0  # run-level retries: a failed run is rerun this many times
    retry_strategy: str = "failed_only"  # failed_only: failed work and what follows; all: everything
    deadline: Mapping[str, Any] | None = None
    # Runs when its assets update: {"condition": <core.assets condition>, "policy": ...}.
    asset_trigger: Mapping[str, Any] | None = None
    # Every asset the DAG mentions (schedule, outlets, inlets): name, uri, group, extra, watchers.
    assets: tuple[Mapping[str, Any], ...] = ()
    display_name: str | None = None  # dag_display_name: shown instead of the id
    is_paused_upon_creation: bool | None = None  # None: the scheduler's setting decides
    owner_links: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Lookups the planner needs on every event; derived, so never serialized.
        by_id = {t.task_id: t for t in self.tasks}
        down: dict[str, list[str]] = {t.task_id: [] for t in self.tasks}
        for t in self.tasks:
            for u in t.upstream:
                down[u].append(t.task_id)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_downstream", {k: tuple(v) for k, v in down.items()})

    def task(self, task_id: str) -> TaskSpec:
        try:
            return self._by_id[task_id]  # type: ignore[attr-defined,no-any-return]
        except KeyError:
            raise KeyError(f"DAG {self.dag_id!r} has no task {task_id!r}") from None

    def has_task(self, task_id: str) -> bool:
        return task_id in self._by_id  # type: ignore[attr-defined]

    def downstream(self, task_id: str) -> tuple[str, ...]:
        return self._downstream[task_id]  # type: ignore[attr-defined,no-any-return]

    def descendants(self, task_id: str) -> list[str]:
        seen: dict[str, None] = {}
        stack = list(self.downstream(task_id))
        while stack:
            t = stack.pop()
            if t not in seen:
                seen[t] = None
                stack.extend(self.downstream(t))
        return list(seen)

    @property
    def task_ids(self) -> list[str]:
        return [t.task_id for t in self.tasks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "tasks": [t.to_dict() for t in self.tasks],
            "fileloc": self.fileloc,
            "timetable": dict(self.timetable),
            "start_date": self.start_date,
            "end_date": self.end_date,
            "catchup": self.catchup,
            "max_active_runs": self.max_active_runs,
            "max_active_tasks": self.max_active_tasks,
            "dagrun_timeout": self.dagrun_timeout,
            "params": dict(self.params),
            "tags": list(self.tags),
            "description": self.description,
            "doc": self.doc,
            "callbacks": list(self.callbacks),
            "retries": self.retries,
            "retry_strategy": self.retry_strategy,
            "deadline": dict(self.deadline) if self.deadline else None,
            "asset_trigger": dict(self.asset_trigger) if self.asset_trigger else None,
            "assets": [dict(a) for a in self.assets],
            "display_name": self.display_name,
            "is_paused_upon_creation": self.is_paused_upon_creation,
            "owner_links": dict(self.owner_links),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DagSpec:
        return cls(
            dag_id=d["dag_id"],
            tasks=tuple(TaskSpec.from_dict(t) for t in d["tasks"]),
            fileloc=d.get("fileloc", ""),
            timetable=d.get("timetable", {"type": "none"}),
            start_date=d.get("start_date"),
            end_date=d.get("end_date"),
            catchup=d.get("catchup", False),
            max_active_runs=d.get("max_active_runs", 16),
            max_active_tasks=d.get("max_active_tasks", 16),
            dagrun_timeout=d.get("dagrun_timeout"),
            params=d.get("params", {}),
            tags=tuple(d.get("tags", ())),
            description=d.get("description"),
            doc=d.get("doc"),
            callbacks=tuple(d.get("callbacks", ())),
            retries=d.get("retries", 0),
            retry_strategy=d.get("retry_strategy", "failed_only"),
            deadline=d.get("deadline"),
            asset_trigger=d.get("asset_trigger"),
            assets=tuple(d.get("assets", ())),
            display_name=d.get("display_name"),
            is_paused_upon_creation=d.get("is_paused_upon_creation"),
            owner_links=d.get("owner_links") or {},
        )

    @classmethod
    def from_json(cls, s: str) -> DagSpec:
        return cls.from_dict(json.loads(s))

    def fingerprint(self) -> str:
        """A hash of the structure: a new DAG version is recorded when it changes."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
