"""Airflow 3.3's bodies for DAG runs (``DAGRunResponse``, ``TriggerDAGRunPostBody`` ...),
and how a Millstream run row fills one.

Fields Airflow has and Millstream keeps no notion of get the honest value: ``note``,
``triggering_user_name``, ``last_scheduling_decision``, ``bundle_version``,
``partition_key`` and ``partition_date`` are ``null``. ``triggered_by`` is what the run type
says for runs only one thing makes (the timetable, an asset, a backfill) and ``null`` for a
manual run, as Millstream does not record whether the CLI, the API or an operator made it.
A run's ``dag_versions`` is the one version it runs (Millstream never moves a run to
another version).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, NonNegativeInt, model_validator

from millstream.api.v2.common import Out
from millstream.api.v2.dags_models import BUNDLE_NAME, DagVersionResponse, version_uuid
from millstream.api.v2.task_instances_models import Strict, TaskInstanceResponse


class DagRunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


class DagRunType(StrEnum):
    BACKFILL_JOB = "backfill"
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    OPERATOR_TRIGGERED = "operator_triggered"
    ASSET_TRIGGERED = "asset_triggered"
    ASSET_MATERIALIZATION = "asset_materialization"


class DagRunTriggeredByType(StrEnum):
    CLI = "cli"
    OPERATOR = "operator"
    REST_API = "rest_api"
    UI = "ui"
    TEST = "test"
    TIMETABLE = "timetable"
    ASSET = "asset"
    BACKFILL = "backfill"


class DagRunMutableStates(StrEnum):
    """The states a user may set (PATCH), and that a run may be deleted in."""

    QUEUED = "queued"
    SUCCESS = "success"
    FAILED = "failed"


#: The largest integer the databases take (past it a 422, not a 500 from the driver).
BIGGEST = 2**63 - 1

#: The one thing that makes runs of each type, where there is one thing.
_TRIGGERED_BY = {
    "scheduled": DagRunTriggeredByType.TIMETABLE,
    "asset_triggered": DagRunTriggeredByType.ASSET,
    "backfill": DagRunTriggeredByType.BACKFILL,
}


# -- responses ------------------------------------------------------------------------------


class DAGRunResponse(Out):
    dag_run_id: str
    dag_id: str
    logical_date: datetime | None
    queued_at: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    run_after: datetime
    last_scheduling_decision: datetime | None
    run_type: DagRunType
    state: DagRunState
    triggered_by: DagRunTriggeredByType | None
    triggering_user_name: str | None
    conf: dict[str, Any] | None
    note: str | None
    dag_versions: list[DagVersionResponse]
    bundle_version: str | None
    dag_display_name: str
    partition_key: str | None
    partition_date: datetime | None


class DAGRunCollectionResponse(Out):
    dag_runs: list[DAGRunResponse]
    total_entries: int | None = Field(
        default=None,
        description="Number of matching items. For offset pagination this is the exact total. "
        "For cursor pagination it is capped at ``total_entries_limit``.",
    )
    total_entries_limit: int | None = None
    next_cursor: str | None = None
    previous_cursor: str | None = None


class NewTaskResponse(Out):
    task_id: str
    task_display_name: str


class ClearTaskInstanceCollectionResponse(Out):
    task_instances: list[TaskInstanceResponse | NewTaskResponse]
    total_entries: int


# -- bodies ---------------------------------------------------------------------------------


class TriggerDAGRunPostBody(Strict):
    dag_run_id: str | None = None
    data_interval_start: AwareDatetime | None = None
    data_interval_end: AwareDatetime | None = None
    logical_date: AwareDatetime | None
    run_after: datetime | None = None
    conf: dict[str, Any] | None = Field(default_factory=dict)
    note: str | None = None
    partition_key: str | None = None

    @model_validator(mode="after")
    def check_data_intervals(self) -> TriggerDAGRunPostBody:
        if (self.data_interval_start is None) != (self.data_interval_end is None):
            raise ValueError(
                "Either both data_interval_start and data_interval_end must be provided or both must be None"
            )
        return self


class DAGRunPatchBody(Strict):
    state: DagRunMutableStates | None = None
    note: str | None = Field(None, max_length=1000)


class DAGRunClearBody(Strict):
    dry_run: bool = True
    only_failed: bool = False
    only_new: bool = Field(
        default=False,
        description="Only queue newly added tasks in the latest Dag version without clearing existing tasks.",
    )
    run_on_latest_version: bool | None = None
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="before")
    @classmethod
    def validate_only_new_only_failed_mutually_exclusive(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("only_new") and data.get("only_failed"):
            raise ValueError("only_new and only_failed are mutually exclusive")
        return data


class DAGRunsBatchBody(Strict):
    order_by: str | None = None
    page_offset: Annotated[NonNegativeInt, Field(le=BIGGEST)] = 0
    page_limit: Annotated[NonNegativeInt, Field(le=BIGGEST)] = 100
    dag_ids: list[str] | None = None
    states: list[DagRunState | None] | None = None

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

    conf_contains: str | None = None


# -- rows to bodies -------------------------------------------------------------------------


def run_response(
    row: Mapping[str, Any], names: Mapping[str, str], versions: Mapping[int, Any]
) -> DAGRunResponse:
    """One run; ``names`` (dag_id -> display name) and ``versions`` (id -> version row) are
    looked up once for a whole page."""
    start, end = row["start_date"], row["end_date"]
    name = names.get(row["dag_id"], row["dag_id"])
    version = versions.get(row["dag_version_id"])
    dag_versions = []
    if version is not None:
        dag_versions.append(
            DagVersionResponse(
                id=version_uuid(version["id"]),
                version_number=version["version_number"],
                dag_id=row["dag_id"],
                bundle_name=BUNDLE_NAME,
                bundle_version=None,
                created_at=version["created_at"],
                dag_display_name=name,
                bundle_url=None,
            )
        )
    return DAGRunResponse(
        dag_run_id=row["run_id"],
        dag_id=row["dag_id"],
        logical_date=row["logical_date"],
        queued_at=row["queued_at"],
        start_date=start,
        end_date=end,
        duration=(end - start).total_seconds() if start and end else None,
        data_interval_start=row["data_interval_start"],
        data_interval_end=row["data_interval_end"],
        run_after=row["run_after"],
        last_scheduling_decision=None,
        run_type=DagRunType(row["run_type"]),
        state=DagRunState(row["state"]),
        triggered_by=_TRIGGERED_BY.get(row["run_type"]),
        triggering_user_name=None,
        conf=dict(row["conf"] or {}),
        note=None,
        dag_versions=dag_versions,
        bundle_version=None,
        dag_display_name=name,
        partition_key=None,
        partition_date=None,
    )


def ids_of(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[int]]:
    """The DAG ids and version ids a page of runs names (to look them up once)."""
    listed = list(rows)
    return [r["dag_id"] for r in listed], [r["dag_version_id"] for r in listed]
