"""Airflow 3.3's asset bodies and answers (``datamodels/assets.py``), field for field.

Where Millstream keeps less than Airflow, the field says so honestly rather than inventing:
see :mod:`.assets` for how each is filled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from millstream.api.schemas import JsonObject
from millstream.api.v2.common import Out
from millstream.api.v2.dag_runs_models import TriggerDAGRunPostBody
from millstream.sdk.masking import redact


class DagScheduleAssetReference(Out):
    dag_id: str
    created_at: datetime
    updated_at: datetime


class TaskInletAssetReference(Out):
    dag_id: str
    task_id: str
    created_at: datetime
    updated_at: datetime


class TaskOutletAssetReference(Out):
    dag_id: str
    task_id: str
    created_at: datetime
    updated_at: datetime


class LastAssetEventResponse(Out):
    id: int | None = None
    timestamp: datetime | None = None


class AssetWatcherResponse(Out):
    name: str
    trigger_id: int
    created_date: datetime


class AssetAliasResponse(Out):
    id: int
    name: str
    group: str


class AssetResponse(Out):
    id: int
    name: str
    uri: str
    group: str
    extra: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    scheduled_dags: list[DagScheduleAssetReference]
    producing_tasks: list[TaskOutletAssetReference]
    consuming_tasks: list[TaskInletAssetReference]
    aliases: list[AssetAliasResponse]
    watchers: list[AssetWatcherResponse]
    last_asset_event: LastAssetEventResponse | None = None

    @field_validator("extra", mode="after")
    @classmethod
    def _redact(cls, v: dict[str, Any] | None) -> Any:
        return redact(v)


class AssetCollectionResponse(Out):
    assets: list[AssetResponse]
    total_entries: int


class AssetAliasCollectionResponse(Out):
    asset_aliases: list[AssetAliasResponse]
    total_entries: int


class DagRunAssetReference(Out):
    run_id: str
    dag_id: str
    logical_date: datetime | None
    # Airflow declares a datetime; a run still queued has not started, and null says so.
    start_date: datetime | None
    end_date: datetime | None
    state: str
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    partition_key: str | None = None
    triggering: bool = Field(
        description="Whether this asset event triggered the referenced dag run. Only a run's most recent "
        "consumed asset event triggers it; earlier consumed events are included in the run but "
        "did not trigger it."
    )


class AssetEventResponse(Out):
    id: int
    asset_id: int
    uri: str | None = None
    name: str | None = None
    group: str | None = None
    extra: dict[str, Any] | None = None
    source_task_id: str | None = None
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_map_index: int
    created_dagruns: list[DagRunAssetReference]
    timestamp: datetime
    partition_key: str | None = None

    @field_validator("extra", mode="after")
    @classmethod
    def _redact(cls, v: dict[str, Any] | None) -> Any:
        return redact(v)


class AssetEventCollectionResponse(Out):
    asset_events: list[AssetEventResponse]
    total_entries: int


class QueuedEventResponse(Out):
    dag_id: str
    asset_id: int
    created_at: datetime
    dag_display_name: str


class QueuedEventCollectionResponse(Out):
    queued_events: list[QueuedEventResponse]
    total_entries: int


class _Body(BaseModel):
    """Airflow's request bodies forbid fields they do not know."""

    model_config = ConfigDict(extra="forbid")


class AssetEventAccessControl(_Body):
    consumer_teams: list[str] | None = None
    allow_global: bool = True


class CreateAssetEventsBody(_Body):
    asset_id: int
    partition_key: Annotated[str, StringConstraints(pattern=r"\S", max_length=250)] | None = None
    extra: JsonObject = Field(default_factory=dict)
    access_control: AssetEventAccessControl | None = None


class MaterializeAssetBody(TriggerDAGRunPostBody):
    """Airflow's: a trigger body whose ``logical_date`` may be left out (a run without one)."""

    logical_date: AwareDatetime | None = None


def event_responses(
    rows: Sequence[Mapping[str, Any]], runs: Mapping[int, Sequence[Mapping[str, Any]]]
) -> list[AssetEventResponse]:
    """Event rows (``asset_queries.events_filtered``) as answers; ``runs`` is
    ``asset_queries.runs_of_events`` for them (event id -> the runs that consumed it)."""
    return [
        AssetEventResponse(
            id=r["id"],
            asset_id=r["asset_id"],
            uri=r["asset_uri"],
            name=r["asset_name"],
            group=r["asset_group"],
            extra=dict(r["extra"] or {}),
            source_task_id=r["source_task_id"],
            source_dag_id=r["source_dag_id"],
            source_run_id=r["source_run_id"],
            source_map_index=-1 if r["source_map_index"] is None else r["source_map_index"],
            created_dagruns=[DagRunAssetReference.model_validate(x) for x in runs.get(r["id"], [])],
            timestamp=r["timestamp"],
        )
        for r in rows
    ]
