"""Airflow 3.3's bodies for the DAG endpoints (``DAGResponse``, ``DAGDetailsResponse``,
``TaskResponse`` ...), and how a Millstream DAG row and its parsed :class:`DagSpec` fill them.

Fields Airflow has and Millstream does not keep get the honest empty value: ``owners`` is
``[]`` (task owners are not recorded in a DAG version), ``default_args`` ``null``,
``last_parse_duration`` ``null``. Millstream reads one DAG folder, reported as Airflow's
default bundle ``dags-folder`` (unversioned, so ``bundle_version`` is ``null``).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
from itsdangerous import URLSafeSerializer
from pydantic import Field

from millstream.api.v2.common import Out
from millstream.core.model import DagSpec, TaskSpec
from millstream.core.states import RunState
from millstream.core.timetables import from_spec, parse_dates
from millstream.store.tables import DEFAULT_POOL

#: The one bundle Millstream has: its DAG folder, under Airflow's default bundle name.
BUNDLE_NAME = "dags-folder"
#: The salt of ``file_token`` signatures (so a token is never valid as anything else).
FILE_TOKEN_SALT = "millstream.v2.file_token"

#: Millstream's serialized timetable type -> the class name Airflow reports as ``timetable_type``.
TIMETABLE_TYPES = {
    "none": "NullTimetable",
    "once": "OnceTimetable",
    "continuous": "ContinuousTimetable",
    "cron": "CronTriggerTimetable",
    "cron_interval": "CronDataIntervalTimetable",
    "delta": "DeltaTriggerTimetable",
    "delta_interval": "DeltaDataIntervalTimetable",
}


class DagTagResponse(Out):
    name: str
    dag_id: str
    dag_display_name: str


class DagVersionResponse(Out):
    id: uuid.UUID
    version_number: int
    dag_id: str
    bundle_name: str | None
    bundle_version: str | None
    created_at: datetime
    dag_display_name: str
    bundle_url: str | None


class DAGResponse(Out):
    dag_id: str
    dag_display_name: str
    is_paused: bool
    is_stale: bool
    last_parsed_time: datetime | None
    last_parse_duration: float | None
    last_expired: datetime | None
    bundle_name: str | None
    bundle_version: str | None
    relative_fileloc: str | None
    fileloc: str
    description: str | None
    timetable_summary: str | None
    timetable_description: str | None
    timetable_partitioned: bool
    timetable_periodic: bool
    tags: list[DagTagResponse]
    max_active_tasks: int
    max_active_runs: int | None
    max_consecutive_failed_dag_runs: int
    has_task_concurrency_limits: bool
    has_import_errors: bool
    next_dagrun_logical_date: datetime | None
    next_dagrun_data_interval_start: datetime | None
    next_dagrun_data_interval_end: datetime | None
    next_dagrun_run_after: datetime | None
    allowed_run_types: list[str] | None
    owners: list[str]
    is_backfillable: bool
    file_token: str


class DAGCollectionResponse(Out):
    dags: list[DAGResponse]
    total_entries: int


class DAGDetailsResponse(DAGResponse):
    catchup: bool
    dag_run_timeout: timedelta | None
    asset_expression: dict[str, Any] | None
    doc_md: str | None
    start_date: datetime | None
    end_date: datetime | None
    is_paused_upon_creation: bool | None
    params: dict[str, Any] | None
    render_template_as_native_obj: bool
    template_search_path: list[str] | None
    timezone: str | None
    last_parsed: datetime | None
    default_args: dict[str, Any] | None
    rerun_with_latest_version: bool | None = None
    owner_links: dict[str, str] | None = None
    is_favorite: bool = False
    active_runs_count: int = 0
    concurrency: int
    latest_dag_version: DagVersionResponse | None


class DAGPatchBody(Out):
    """Airflow's body: ``is_paused`` only, nothing else allowed."""

    model_config = {**Out.model_config, "extra": "forbid"}

    is_paused: bool


class TimeDelta(Out):
    object_type: str = Field("TimeDelta", serialization_alias="__type")
    days: int
    seconds: int
    microseconds: int


class TaskResponse(Out):
    task_id: str | None
    task_display_name: str | None
    owner: str | None
    start_date: datetime | None
    end_date: datetime | None
    trigger_rule: str | None
    depends_on_past: bool
    wait_for_downstream: bool
    retries: float | None
    queue: str | None
    pool: str | None
    pool_slots: float | None
    execution_timeout: TimeDelta | None
    retry_delay: TimeDelta | None
    retry_exponential_backoff: float
    priority_weight: float | None
    weight_rule: str | None
    ui_color: str | None
    ui_fgcolor: str | None
    template_fields: list[str] | None
    downstream_task_ids: list[str] | None
    doc_md: str | None
    operator_name: str | None
    params: dict[str, Any] | None
    class_ref: dict[str, Any] | None
    is_mapped: bool | None
    extra_links: list[str]


class TaskCollectionResponse(Out):
    tasks: list[TaskResponse]
    total_entries: int


class DagStatsStateResponse(Out):
    state: RunState
    count: int


class DagStatsResponse(Out):
    dag_id: str
    dag_display_name: str
    stats: list[DagStatsStateResponse]


class DagStatsCollectionResponse(Out):
    dags: list[DagStatsResponse]
    total_entries: int


class ImportErrorResponse(Out):
    import_error_id: int
    timestamp: datetime
    filename: str
    bundle_name: str | None
    stack_trace: str


class ImportErrorCollectionResponse(Out):
    import_errors: list[ImportErrorResponse]
    total_entries: int


class DAGSourceResponse(Out):
    content: str | None
    dag_id: str
    version_number: int | None
    dag_display_name: str


class DAGTagCollectionResponse(Out):
    tags: list[str]
    total_entries: int


# -- filling them -------------------------------------------------------------------------


def display_name(row: Mapping[Any, Any]) -> str:
    return str(row["display_name"] or row["dag_id"])


def relative(path: str, folder: Path) -> str:
    """A DAG file's path in its bundle (the DAG folder), as Airflow names files: relative."""
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return path


def version_uuid(version_id: int) -> uuid.UUID:
    """Airflow's DAG versions are UUIDs; Millstream's are integers: this one, as a UUID
    (``00000000-0000-0000-0000-000000000007`` is version row 7), stable and reversible."""
    return uuid.UUID(int=version_id)


def import_error_id(filename: str) -> int:
    """Millstream keys import errors by file; Airflow by an integer id. This id is the
    file's, stable while the file keeps failing (a 31-bit number taken from its path)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(filename.encode()).digest()[:4], "big") & 0x7FFFFFFF


def file_token(secret: str, relative_fileloc: str) -> str:
    """Airflow's signed reference to a DAG file (what its reparse endpoint takes)."""
    payload = {"bundle_name": BUNDLE_NAME, "relative_fileloc": relative_fileloc}
    return URLSafeSerializer(secret, salt=FILE_TOKEN_SALT).dumps(payload)


def timetable_type(spec: DagSpec) -> str:
    kind = TIMETABLE_TYPES.get(str(spec.timetable.get("type", "none")), "NullTimetable")
    if spec.asset_trigger:
        return "AssetTriggeredTimetable" if kind == "NullTimetable" else "AssetOrTimeSchedule"
    return kind


def is_periodic(spec: DagSpec) -> bool:
    return bool(from_spec(spec.timetable).periodic)


def has_task_limits(spec: DagSpec) -> bool:
    return any(
        t.max_active_tis_per_dag is not None or t.max_active_tis_per_dagrun is not None for t in spec.tasks
    )


def dag_response(
    row: Mapping[Any, Any], spec: DagSpec, *, folder: Path, secret: str, has_import_errors: bool
) -> dict[str, Any]:
    """The ``DAGResponse`` fields of one DAG."""
    name = display_name(row)
    rel = relative(row["fileloc"], folder)
    summary = row["timetable_summary"]
    periodic = is_periodic(spec)
    return {
        "dag_id": row["dag_id"],
        "dag_display_name": name,
        "is_paused": bool(row["is_paused"]),
        "is_stale": not row["is_active"],
        "last_parsed_time": row["last_parsed_at"],
        "last_parse_duration": None,
        "last_expired": None,
        "bundle_name": BUNDLE_NAME,
        "bundle_version": None,
        "relative_fileloc": rel,
        "fileloc": row["fileloc"],
        "description": row["description"],
        "timetable_summary": None if summary in (None, "None") else summary,
        "timetable_description": None,
        "timetable_partitioned": False,
        "timetable_periodic": periodic,
        "tags": [
            {"name": t, "dag_id": row["dag_id"], "dag_display_name": name} for t in sorted(row["tags"] or [])
        ],
        "max_active_tasks": spec.max_active_tasks,
        "max_active_runs": spec.max_active_runs,
        "max_consecutive_failed_dag_runs": 0,
        "has_task_concurrency_limits": has_task_limits(spec),
        "has_import_errors": has_import_errors,
        "next_dagrun_logical_date": row["next_run_logical_date"],
        "next_dagrun_data_interval_start": None,
        "next_dagrun_data_interval_end": None,
        "next_dagrun_run_after": row["next_run_after"],
        "allowed_run_types": None,
        "owners": [],
        "is_backfillable": periodic,
        "file_token": file_token(secret, rel),
    }


def dag_params(spec: DagSpec, source: str | None) -> dict[str, Any]:
    """Params as Airflow's API dumps them: value (the default, if it passes its schema),
    schema, description, source (``None`` on the DAG itself, ``"dag"`` as a task inherits
    them: Millstream's tasks have no params of their own)."""
    out: dict[str, Any] = {}
    for name, p in spec.params.items():
        schema = dict(p.get("schema") or {})
        value = p.get("default")
        if "default" in p:
            try:
                jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
            except jsonschema.ValidationError:
                value = None
        out[name] = {"value": value, "schema": schema, "description": p.get("description"), "source": source}
    return out


def asset_expression(spec: DagSpec) -> dict[str, Any] | None:
    """The DAG's asset condition as Airflow serializes it: ``{"any"|"all": [...]}``, leaves
    ``{"asset": {"uri", "name", "group"}}`` and ``{"alias": {"name", "group"}}``."""
    if not spec.asset_trigger:
        return None
    known = {a["name"]: a for a in spec.assets}

    def walk(cond: Mapping[Any, Any]) -> dict[str, Any]:
        ((op, arg),) = cond.items()
        if op == "asset":
            a = known.get(arg, {})
            return {"asset": {"uri": a.get("uri", arg), "name": arg, "group": a.get("group", "asset")}}
        if op == "alias":
            return {"alias": {"name": arg, "group": "asset"}}
        return {op: [walk(c) for c in arg]}

    return walk(spec.asset_trigger["condition"])


def details_response(
    base: dict[str, Any],
    row: Mapping[Any, Any],
    spec: DagSpec,
    version: Mapping[Any, Any] | None,
    active_runs: int,
) -> dict[str, Any]:
    """``DAGDetailsResponse``: the list fields and what the parsed version says."""
    start, end = parse_dates(spec.start_date, spec.end_date)
    latest = None
    if version is not None:
        latest = {
            "id": version_uuid(version["id"]),
            "version_number": version["version_number"],
            "dag_id": row["dag_id"],
            "bundle_name": BUNDLE_NAME,
            "bundle_version": None,
            "created_at": version["created_at"],
            "dag_display_name": base["dag_display_name"],
            "bundle_url": None,
        }
    return {
        **base,
        "catchup": spec.catchup,
        "dag_run_timeout": timedelta(seconds=spec.dagrun_timeout) if spec.dagrun_timeout else None,
        "asset_expression": asset_expression(spec),
        "doc_md": inspect.cleandoc(spec.doc) if spec.doc else None,
        "start_date": start,
        "end_date": end,
        "is_paused_upon_creation": spec.is_paused_upon_creation,
        "params": dag_params(spec, None),
        "render_template_as_native_obj": False,
        "template_search_path": None,
        "timezone": spec.timetable.get("tz"),
        "last_parsed": row["last_parsed_at"],
        "default_args": None,
        "rerun_with_latest_version": None,
        "owner_links": dict(row["owner_links"] or {}) or None,
        "is_favorite": False,
        "active_runs_count": active_runs,
        "concurrency": spec.max_active_tasks,
        "latest_dag_version": latest,
    }


def _td(seconds: float | None) -> dict[str, int] | None:
    if seconds is None:
        return None
    d = timedelta(seconds=seconds)
    return {"days": d.days, "seconds": d.seconds, "microseconds": d.microseconds}


def task_response(spec: DagSpec, t: TaskSpec, params: dict[str, Any]) -> dict[str, Any]:
    """``TaskResponse`` from the task as the DAG version records it. The weight is the
    effective one (Millstream records it with its rule applied), hence ``absolute``."""
    start, end = parse_dates(spec.start_date, spec.end_date)
    return {
        "task_id": t.task_id,
        "task_display_name": t.display_name or t.task_id,
        "owner": None,
        "start_date": start,
        "end_date": end,
        "trigger_rule": str(t.trigger_rule.value),
        "depends_on_past": t.depends_on_past,
        "wait_for_downstream": t.wait_for_downstream,
        "retries": t.retries,
        "queue": t.queue,
        "pool": t.pool or DEFAULT_POOL,
        "pool_slots": t.pool_slots,
        "execution_timeout": _td(t.execution_timeout),
        "retry_delay": _td(t.retry_delay),
        "retry_exponential_backoff": t.retry_exponential_backoff,
        "priority_weight": t.priority_weight,
        "weight_rule": "absolute",
        "ui_color": t.ui_color,
        "ui_fgcolor": None,
        "template_fields": None,
        "downstream_task_ids": sorted(spec.downstream(t.task_id)),
        "doc_md": inspect.cleandoc(t.doc) if t.doc else None,
        "operator_name": t.operator,
        "params": params,
        "class_ref": {"module_path": None, "class_name": t.operator} if t.operator else None,
        "is_mapped": t.is_mapped,
        "extra_links": [],
    }
