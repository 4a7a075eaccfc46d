"""Airflow 3.3's bodies for task instances, their tries, logs and XComs, and how a
Millstream row becomes one.

Where Airflow has a field Millstream keeps no notion of, the value is the honest one:
``null`` (unixname, queued_when, scheduled_when, note, executor, trigger, triggerer_job),
``"{}"`` for executor_config (Millstream tasks have none).
Airflow's ids are UUIDs; Millstream's task instances are keyed by (run, task, map index),
so theirs is derived from that key (UUID 5): stable, and the same everywhere it appears.
DAG versions are shown as the DAG endpoints show them (``dags_models``).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from millstream.api.v2.common import Out
from millstream.api.v2.dags_models import BUNDLE_NAME, DagVersionResponse, version_uuid
from millstream.core.model import DagSpec
from millstream.store.tables import DEFAULT_POOL

#: Airflow 3.3's TaskInstanceState values, in its order (its 422 lists them so).
AIRFLOW_TI_STATES = (
    "removed",
    "scheduled",
    "queued",
    "running",
    "success",
    "restarting",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "deferred",
    "awaiting_input",
)

#: The largest integer a column holds (PostgreSQL's INTEGER; offsets are BIGINT).
MAX_INT = 2**31 - 1
MAX_BIG = 2**63 - 1
Int = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)]

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://millstream.dev/api/v2")


def ti_uuid(dag_id: str, run_id: str, task_id: str, map_index: int) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, json.dumps(["ti", dag_id, run_id, task_id, map_index]))


class Strict(BaseModel):
    """A request body: unknown fields are refused (422), as Airflow's StrictBaseModel."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- responses ------------------------------------------------------------------------------


class TriggerResponse(Out):
    id: int
    classpath: str
    kwargs: str
    created_date: datetime
    queue: str | None
    triggerer_id: int | None


class JobResponse(Out):
    id: int
    dag_id: str | None
    state: str | None
    job_type: str | None
    start_date: datetime | None
    end_date: datetime | None
    latest_heartbeat: datetime | None
    executor_class: str | None
    hostname: str | None
    unixname: str | None
    dag_display_name: str | None = None


class TaskInstanceHistoryResponse(Out):
    task_id: str
    dag_id: str
    dag_run_id: str
    map_index: int
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    state: str | None
    try_number: int
    max_tries: int
    task_display_name: str
    dag_display_name: str
    hostname: str | None
    unixname: str | None = None
    pool: str
    pool_slots: int
    queue: str | None
    priority_weight: int | None
    operator: str | None
    operator_name: str | None
    queued_when: datetime | None = None
    scheduled_when: datetime | None = None
    pid: int | None
    executor: str | None = None
    executor_config: str = "{}"
    dag_version: DagVersionResponse | None


class TaskInstanceResponse(TaskInstanceHistoryResponse):
    id: uuid.UUID
    logical_date: datetime | None
    run_after: datetime
    note: str | None = None
    rendered_map_index: str | None
    rendered_fields: dict[str, Any] = Field(default_factory=dict)
    trigger: TriggerResponse | None = None
    triggerer_job: JobResponse | None = None


class TaskInstanceCollectionResponse(Out):
    task_instances: list[TaskInstanceResponse]
    total_entries: int | None = None
    total_entries_limit: int | None = None
    next_cursor: str | None = None
    previous_cursor: str | None = None


class TaskInstanceHistoryCollectionResponse(Out):
    task_instances: list[TaskInstanceHistoryResponse]
    total_entries: int


class TaskInstancesLogResponse(Out):
    content: list[dict[str, Any]] | list[str]
    continuation_token: str | None


class XComResponse(Out):
    key: str
    timestamp: datetime
    logical_date: datetime | None
    map_index: int
    task_id: str
    dag_id: str
    run_id: str
    dag_display_name: str
    task_display_name: str
    run_after: datetime


class XComResponseNative(XComResponse):
    value: Any


class XComResponseString(XComResponse):
    value: str | None


class XComCollectionResponse(Out):
    xcom_entries: list[XComResponse]
    total_entries: int


# -- request bodies -----------------------------------------------------------------------------

Note = Annotated[str, StringConstraints(max_length=1000)]


class PatchTaskInstanceBody(Strict):
    new_state: str | None = None
    note: Note | None = None
    include_upstream: bool = False
    include_downstream: bool = False
    include_future: bool = False
    include_past: bool = False

    @field_validator("new_state", mode="before")
    @classmethod
    def _valid_state(cls, ns: str | None) -> str:
        valid = ["success", "failed", "skipped"]
        if ns is None:
            raise ValueError("'new_state' should not be empty")
        ns = str(ns).lower()
        if ns not in valid:
            raise ValueError(f"'{ns}' is not one of {valid}")
        return ns


class ClearTaskInstancesBody(Strict):
    dry_run: bool = True
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    only_failed: bool = True
    only_running: bool = False
    reset_dag_runs: bool = True
    task_ids: list[str | tuple[str, Int]] | None = None
    dag_run_id: str | None = None
    include_upstream: bool = False
    include_downstream: bool = False
    include_future: bool = False
    include_past: bool = False
    run_on_latest_version: bool | None = None
    prevent_running_task: bool = False
    note: Note | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        """Airflow's checks, in its order and words."""
        if not isinstance(data, dict):
            return data
        if data.get("only_failed") and data.get("only_running"):
            raise ValueError("only_failed and only_running both are set to True")
        start, end = data.get("start_date"), data.get("end_date")
        if isinstance(start, str) and isinstance(end, str) and start > end:  # as Airflow: the texts
            raise ValueError("end_date is sooner than start_date")
        if data.get("start_date") and data.get("end_date") and data.get("dag_run_id"):
            raise ValueError("Exactly one of dag_run_id or (start_date and end_date) must be provided")
        if data.get("start_date") and data.get("dag_run_id"):
            raise ValueError("Exactly one of dag_run_id or start_date must be provided")
        if data.get("end_date") and data.get("dag_run_id"):
            raise ValueError("Exactly one of dag_run_id or end_date must be provided")
        if isinstance(data.get("task_ids"), list) and len(data["task_ids"]) < 1:
            raise ValueError("task_ids list should have at least 1 element.")
        return data


class TaskInstancesBatchBody(Strict):
    dag_ids: list[str] | None = None
    dag_run_ids: list[str] | None = None
    task_ids: list[str] | None = None
    state: list[str | None] | None = None
    run_after_gte: AwareDatetime | None = None
    run_after_gt: AwareDatetime | None = None
    run_after_lte: AwareDatetime | None = None
    run_after_lt: AwareDatetime | None = None
    logical_date_gte: AwareDatetime | None = None
    logical_date_gt: AwareDatetime | None = None
    logical_date_lte: AwareDatetime | None = None
    logical_date_lt: AwareDatetime | None = None
    start_date_gte: AwareDatetime | None = None
    start_date_gt: AwareDatetime | None = None
    start_date_lte: AwareDatetime | None = None
    start_date_lt: AwareDatetime | None = None
    end_date_gte: AwareDatetime | None = None
    end_date_gt: AwareDatetime | None = None
    end_date_lte: AwareDatetime | None = None
    end_date_lt: AwareDatetime | None = None
    duration_gte: float | None = None
    duration_gt: float | None = None
    duration_lte: float | None = None
    duration_lt: float | None = None
    pool: list[str] | None = None
    queue: list[str] | None = None
    executor: list[str] | None = None
    page_offset: Annotated[int, Field(ge=0, le=MAX_BIG)] = 0
    page_limit: Annotated[int, Field(ge=0, le=MAX_BIG)] = 100
    order_by: str | None = None

    @field_validator("state")
    @classmethod
    def _states(cls, v: list[str | None] | None) -> list[str | None] | None:
        for s in v or []:
            if s is not None and s not in AIRFLOW_TI_STATES:
                raise ValueError(f"Input should be {', '.join(repr(x) for x in AIRFLOW_TI_STATES)}")
        return v


class XComCreateBody(Strict):
    key: str
    value: Any
    map_index: Int = -1


class XComUpdateBody(Strict):
    value: Any
    map_index: Int = -1


# -- rows to bodies ------------------------------------------------------------------------------------


def airflow_state(state: str | None) -> str | None:
    """Millstream's ``none`` (no status yet) is Airflow's null."""
    return None if state in (None, "none") else state


def _task_facts(spec: DagSpec | None, task_id: str) -> dict[str, Any]:
    task = spec.task(task_id) if spec is not None and spec.has_task(task_id) else None
    if task is None:
        return {
            "task_display_name": task_id,
            "pool_slots": 1,
            "queue": None,
            "operator": None,
            "operator_name": None,
        }
    return {
        "task_display_name": task.display_name or task_id,
        "pool_slots": task.pool_slots,
        "queue": task.queue or "default",  # Airflow's [operators] default_queue
        # A decorated task's "operator" is its decorator (``@task``): Airflow's operator_name.
        "operator": None if (task.operator or "@").startswith("@") else task.operator,
        "operator_name": task.operator,
    }


@functools.lru_cache(maxsize=1024)
def _version(
    version_id: int, number: int, dag_id: str, created_at: datetime, dag_name: str
) -> DagVersionResponse:
    """Shared by every instance of a page (a run's instances are all of one version)."""
    return DagVersionResponse(
        id=version_uuid(version_id),
        version_number=number,
        dag_id=dag_id,
        bundle_name=BUNDLE_NAME,
        bundle_version=None,
        created_at=created_at,
        dag_display_name=dag_name,
        bundle_url=None,
    )


def history_dict(row: Mapping[str, Any], spec: DagSpec | None) -> dict[str, Any]:
    """The fields a try and an instance share, from a row of ``task_instances.api_query``."""
    dag_name = row.get("dag_display_name") or row["dag_id"]
    facts = _task_facts(spec, row["task_id"])
    version = None
    if row.get("dag_version_id") is not None:
        version = _version(
            row["dag_version_id"], row["version_number"], row["dag_id"], row["version_created_at"], dag_name
        )
    return {
        "task_id": row["task_id"],
        "dag_id": row["dag_id"],
        "dag_run_id": row["run_id"],
        "map_index": row["map_index"],
        "start_date": row["start_date"],
        "end_date": row["end_date"],
        "duration": row["duration"],
        "state": airflow_state(row["state"]),
        "try_number": row["try_number"],
        "max_tries": row["max_tries"],
        "task_display_name": facts["task_display_name"],
        "dag_display_name": dag_name,
        "hostname": row["hostname"],
        "pool": row["pool"] or DEFAULT_POOL,
        "pool_slots": facts["pool_slots"],
        "queue": facts["queue"],
        "priority_weight": row["priority_weight"],
        "operator": facts["operator"],
        "operator_name": facts["operator_name"],
        "pid": row["pid"],
        "dag_version": version,
    }


def ti_response(row: Mapping[str, Any], spec: DagSpec | None) -> TaskInstanceResponse:
    fields = row.get("rendered_fields")
    return TaskInstanceResponse(
        **history_dict(row, spec),
        id=ti_uuid(row["dag_id"], row["run_id"], row["task_id"], row["map_index"]),
        logical_date=row["logical_date"],
        run_after=row["run_after"],
        rendered_map_index=row["label"],
        rendered_fields=json.loads(fields) if fields else {},
    )


def earlier_try(row: Mapping[str, Any], spec: DagSpec | None, try_number: int) -> TaskInstanceHistoryResponse:
    """A try before the current one: Millstream keeps no per-try record of its state, times,
    host or pid (only its log and rendered fields), so those are null."""
    d = history_dict(row, spec)
    d.update(
        try_number=try_number,
        start_date=None,
        end_date=None,
        duration=None,
        state=None,
        hostname=None,
        pid=None,
    )
    return TaskInstanceHistoryResponse(**d)
