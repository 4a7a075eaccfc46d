"""What Airflow's task instance routes share: their query parameters, the DAG-spec facts
some filters need, Airflow's 404s, and the ``{map_index:mapindex}`` path convertor.

Filters on what only the DAG file says (display names, task groups, operators, queues) use
the run's DAG version, or each DAG's latest version when no run is named; Millstream
records no executor per instance, so an ``executor`` filter matches none (Airflow's null).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import HTTPException, Path, Query
from pydantic import Field
from sqlalchemy import Connection
from starlette.convertors import Convertor, register_url_convertor

from millstream.api.v2.common import not_found, order_by, split_terms
from millstream.api.v2.task_instances_models import AIRFLOW_TI_STATES, TaskInstanceResponse, ti_response
from millstream.core.model import DagSpec
from millstream.core.states import TaskState
from millstream.errors import NotFoundError
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q


class _MapIndex(Convertor[int]):
    """``{map_index:mapindex}``: a (possibly negative) integer segment, so that
    ``.../{task_id}/xcomEntries`` or ``.../{task_id}/logs`` never read as a map index."""

    regex = "-?[0-9]+"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("mapindex", _MapIndex())

PREFIX = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances"
ONE = PREFIX + "/{task_id}"
MAPPED = PREFIX + "/{task_id}/{map_index:mapindex}"

ORDERABLE = (
    "id",
    "state",
    "duration",
    "start_date",
    "end_date",
    "map_index",
    "try_number",
    "logical_date",
    "run_after",
    "data_interval_start",
    "data_interval_end",
    "rendered_map_index",
    "operator",
)
_DERIVED = {
    "id": "task instance ids are derived from each instance's key, not stored",
    "operator": "operators come from the DAG file, not from a stored column",
}


# -- shared pieces --------------------------------------------------------------------------------


def sql_order(values: Sequence[str] | None, allowed: Iterable[str], default: str) -> list[tuple[str, bool]]:
    keys = order_by(values, allowed, default)
    for name, _ in keys:
        if name in _DERIVED:
            raise HTTPException(
                400, f"Ordering with '{name}' is not supported by Millstream: {_DERIVED[name]}"
            )
    return keys


def states_filter(values: Sequence[str | None] | None) -> list[str] | None:
    """Airflow's ``state`` filter: ``none``/``no_status`` (or null) is "no status yet"."""
    if not values:
        return None
    out = []
    for s in values:
        if s in (None, "none", "no_status"):
            out.append(TaskState.NONE.value)
        elif s in AIRFLOW_TI_STATES:
            out.append(s)
        else:
            raise HTTPException(
                422, f"Invalid value for state. Valid values are {', '.join(AIRFLOW_TI_STATES)}"
            )
    return out


class Specs:
    """DAG specs by version, read once per request."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._by_version: dict[int, DagSpec] = {}

    def of(self, version_id: int | None) -> DagSpec | None:
        if version_id is None:
            return None
        if version_id not in self._by_version:
            self._by_version[version_id] = dags_q.spec_for_version(self.conn, version_id)
        return self._by_version[version_id]

    def responses(self, rows: Iterable[Mapping[str, Any]]) -> list[TaskInstanceResponse]:
        return [ti_response(r, self.of(r["dag_version_id"])) for r in rows]


def dag_or_404(conn: Connection, dag_id: str) -> sa.RowMapping:
    try:
        return dags_q.get_dag(conn, dag_id)
    except NotFoundError:
        not_found(f"The Dag with ID: `{dag_id}` was not found")


def find_run(conn: Connection, dag_id: str, run_id: str) -> sa.RowMapping | None:
    try:
        return runs_q.get_run(conn, dag_id, run_id)
    except NotFoundError:
        return None


def latest_spec(conn: Connection, dag_id: str) -> DagSpec:
    dag_or_404(conn, dag_id)
    try:
        return dags_q.latest_spec(conn, dag_id)[1]
    except NotFoundError:
        not_found(f"The Dag with ID: `{dag_id}` was not found")


def ranges_of(values: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """``{"start_date_gte": x, ...}`` -> [("start_date", "gte", x), ...] for those given."""
    out = []
    for key, value in values.items():
        if value is not None:
            field, op = key.rsplit("_", 1)
            out.append((field, op, utc(value)))
    return out


def utc(value: Any) -> Any:
    """A date given without a zone means UTC (as everywhere in Millstream); one whose UTC
    instant falls outside the years 1..9999 is the nearest date that can be stored (a bound
    before or after every stored date, as it was)."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return (datetime.min if value.year < 5000 else datetime.max).replace(tzinfo=UTC)


def spec_tasks(
    specs: Callable[[], Mapping[str, DagSpec]],
    *,
    display_pattern: str | None = None,
    display_prefix: str | None = None,
    group_id: str | None = None,
    operators: Sequence[str] = (),
    operator_pattern: str | None = None,
    operator_prefix: str | None = None,
    queues: Sequence[str] = (),
    queue_pattern: str | None = None,
    queue_prefix: str | None = None,
) -> dict[str, set[str]] | None:
    """dag_id -> the task ids whose DAG-file facts match every such filter given (None: no
    such filter, and ``specs`` is not even read). Patterns match as Airflow's: ``contains``
    ignores case, ``|`` is "or"."""

    def contains(value: str | None, term: str | None) -> bool:
        if term is None:
            return True
        terms = split_terms(term)
        if term == "~":
            return value is not None
        return value is not None and any(t.lower() in value.lower() for t in terms)

    def prefix(value: str | None, term: str | None) -> bool:
        return term is None or (value is not None and value.startswith(term))

    given = [display_pattern, display_prefix, group_id, operator_pattern, operator_prefix]
    given += [queue_pattern, queue_prefix]
    if all(v is None for v in given) and not operators and not queues:
        return None
    out: dict[str, set[str]] = {}
    for dag_id, spec in specs().items():
        for t in spec.tasks:
            name, queue = t.display_name or t.task_id, t.queue or "default"
            group_ok = group_id is None or (
                t.group_id is not None and (t.group_id == group_id or t.group_id.startswith(group_id + "."))
            )
            if (
                contains(name, display_pattern)
                and prefix(name, display_prefix)
                and group_ok
                and (not operators or (t.operator in operators and not (t.operator or "@").startswith("@")))
                and contains(t.operator, operator_pattern)
                and prefix(t.operator, operator_prefix)
                and (not queues or queue in queues)
                and contains(queue, queue_pattern)
                and prefix(queue, queue_prefix)
            ):
                out.setdefault(dag_id, set()).add(t.task_id)
    return out


def specs_for(conn: Connection, dag_id: str, run: Mapping[str, Any] | None) -> dict[str, DagSpec]:
    if dag_id != "~":
        if run is not None:
            return {dag_id: dags_q.spec_for_version(conn, run["dag_version_id"])}
        return {dag_id: latest_spec(conn, dag_id)}
    out = {}
    for d in dags_q.list_dags(conn):
        try:
            out[d["dag_id"]] = dags_q.latest_spec(conn, d["dag_id"])[1]
        except NotFoundError:
            continue
    return out


# -- list filters (Airflow's query parameters) ------------------------------------------------------

#: Integers a column can hold (PostgreSQL's INTEGER): a larger one is refused (422), not a 500.
MAX_INT = 2**31 - 1
SmallInt = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)]
ListStr = Annotated[list[str], Query()]
ListInt = Annotated[list[SmallInt], Query()]
MapIndexQ = Annotated[int, Query(ge=-MAX_INT, le=MAX_INT)]
OptMapIndexQ = Annotated[int | None, Query(ge=-MAX_INT, le=MAX_INT)]
MapIndexP = Annotated[int, Path(ge=-MAX_INT, le=MAX_INT)]
TryP = Annotated[int, Path(ge=-MAX_INT, le=MAX_INT)]
Str = Annotated[str | None, Query()]
When = Annotated[datetime | None, Query()]
Num = Annotated[float | None, Query()]


class TIQuery:
    """Every filter Airflow's task instance lists take (``listMapped`` and the run's list)."""

    def __init__(
        self,
        state: ListStr = [],  # noqa: B006 - FastAPI copies list defaults
        pool: ListStr = [],  # noqa: B006
        pool_name_pattern: Str = None,
        pool_name_prefix_pattern: Str = None,
        queue: ListStr = [],  # noqa: B006
        queue_name_pattern: Str = None,
        queue_name_prefix_pattern: Str = None,
        executor: ListStr = [],  # noqa: B006
        version_number: ListInt = [],  # noqa: B006
        try_number: ListInt = [],  # noqa: B006
        operator: ListStr = [],  # noqa: B006
        operator_name_pattern: Str = None,
        operator_name_prefix_pattern: Str = None,
        map_index: ListInt = [],  # noqa: B006
        rendered_map_index_pattern: Str = None,
        rendered_map_index_prefix_pattern: Str = None,
        run_after_gte: When = None,
        run_after_gt: When = None,
        run_after_lte: When = None,
        run_after_lt: When = None,
        logical_date_gte: When = None,
        logical_date_gt: When = None,
        logical_date_lte: When = None,
        logical_date_lt: When = None,
        start_date_gte: When = None,
        start_date_gt: When = None,
        start_date_lte: When = None,
        start_date_lt: When = None,
        end_date_gte: When = None,
        end_date_gt: When = None,
        end_date_lte: When = None,
        end_date_lt: When = None,
        updated_at_gte: When = None,
        updated_at_gt: When = None,
        updated_at_lte: When = None,
        updated_at_lt: When = None,
        duration_gte: Num = None,
        duration_gt: Num = None,
        duration_lte: Num = None,
        duration_lt: Num = None,
    ) -> None:
        if any(v is not None for v in (updated_at_gte, updated_at_gt, updated_at_lte, updated_at_lt)):
            raise HTTPException(
                400,
                "Millstream does not record when a task instance was last updated: "
                "updated_at_gte/gt/lte/lt cannot be applied",
            )
        self.states = states_filter(state)
        self.pools = pool or None
        self.executors = executor
        self.version_numbers = version_number or None
        self.try_numbers = try_number or None
        self.map_indexes = map_index or None
        local = dict(locals())
        self.ranges = ranges_of(
            {
                k: v
                for k, v in local.items()
                if re.match(r"(run_after|logical_date|start_date|end_date|duration)_", k)
            }
        )
        self.patterns = [
            (col, how, term)
            for col, how, term in (
                ("pool", "contains", pool_name_pattern),
                ("pool", "prefix", pool_name_prefix_pattern),
                ("rendered_map_index", "contains", rendered_map_index_pattern),
                ("rendered_map_index", "prefix", rendered_map_index_prefix_pattern),
            )
            if term is not None
        ]
        self.spec_filters: dict[str, Any] = {
            "operators": operator,
            "operator_pattern": operator_name_pattern,
            "operator_prefix": operator_name_prefix_pattern,
            "queues": queue,
            "queue_pattern": queue_name_pattern,
            "queue_prefix": queue_name_prefix_pattern,
        }

    def api_filter(self, specs: Callable[[], Mapping[str, DagSpec]], **more: Any) -> ti_q.ApiFilter:
        extra = more.pop("spec_filters", {})
        tasks = spec_tasks(specs, **self.spec_filters, **extra)
        if self.executors:
            tasks = {}  # Millstream records no executor per instance: Airflow's null never matches
        return ti_q.ApiFilter(
            states=self.states,
            pools=self.pools,
            version_numbers=self.version_numbers,
            try_numbers=self.try_numbers,
            map_indexes=self.map_indexes,
            ranges=self.ranges,
            patterns=[*self.patterns, *more.pop("patterns", [])],
            tasks=tasks,
            **more,
        )


def task_rows(
    conn: Connection, dag_id: str, run_id: str, task_id: str, map_index: int | None
) -> list[sa.RowMapping]:
    """One task's instances in a run (every map index, or the one given), by map index."""
    run = find_run(conn, dag_id, run_id)
    if run is None:
        return []
    f = ti_q.ApiFilter(
        run_pk=run["id"], task_ids=[task_id], map_indexes=None if map_index is None else [map_index]
    )
    return list(conn.execute(ti_q.api_query(f)).mappings())
