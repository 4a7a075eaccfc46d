"""Airflow 3.3's DAG run endpoints on many runs at once: the bulk ``PATCH .../dagRuns``
(update states, delete), ``POST /dags/{dag_id}/clearDagRuns``, and a run's upstream asset
events. Each run goes through the same operations as one run's endpoint
(:func:`control.mark_run`, :func:`control.queue_run`, :func:`control.delete_run`,
:func:`~millstream.api.v2.dag_runs_common.clear_one`), with Airflow's answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import Field, model_validator

from millstream import control
from millstream.api.deps import StoreDep, changed
from millstream.api.v2.assets_models import (
    AssetEventCollectionResponse,
    event_responses,
)
from millstream.api.v2.common import EditUser, ReadUser
from millstream.api.v2.dag_runs_common import NO_NOTES, clear_one, get_dag, get_run, one_run
from millstream.api.v2.dag_runs_models import (
    ClearTaskInstanceCollectionResponse,
    DAGRunClearBody,
    DAGRunCollectionResponse,
    DagRunMutableStates,
    DAGRunResponse,
    NewTaskResponse,
)
from millstream.api.v2.secrets_models import (
    BulkActionNotOnExistence,
    BulkActionResponse,
    BulkBody,
    BulkCreateAction,
    BulkDeleteAction,
    BulkResponse,
    BulkUpdateAction,
    Strict,
    run_bulk,
)
from millstream.api.v2.task_instances_models import TaskInstanceResponse
from millstream.core.states import RunState
from millstream.errors import ConflictError, NotFoundError
from millstream.store import Store, asset_queries
from millstream.store import assets as assets_q
from millstream.store import runs as runs_q

router = APIRouter(tags=["DagRun"])

Key = tuple[str, str]


class BulkDAGRunBody(Strict):
    dag_run_id: str
    dag_id: str | None = None
    state: DagRunMutableStates | None = None
    note: str | None = Field(None, max_length=1000)


class BulkDAGRunClearBody(DAGRunClearBody):
    """Runs by ``dag_runs``, or by partition (no Millstream run has one: they select none)."""

    dag_runs: list[BulkDAGRunBody] = Field(default_factory=list)
    partition_key: str | None = None
    partition_date_start: datetime | None = None
    partition_date_end: datetime | None = None

    @model_validator(mode="after")
    def validate_exactly_one_selection_mode(self) -> BulkDAGRunClearBody:
        window = self.partition_date_start is not None or self.partition_date_end is not None
        if sum([bool(self.dag_runs), self.partition_key is not None, window]) != 1:
            raise ValueError(
                "Exactly one of dag_runs (non-empty), partition_key, or a partition date window "
                "(partition_date_start / partition_date_end) must be provided."
            )
        start, end = self.partition_date_start, self.partition_date_end
        if start is not None and end is not None and start > end:
            raise ValueError("partition_date_start must be on or before partition_date_end.")
        return self


def _key(dag_id: str, entity: str | BulkDAGRunBody, res: BulkActionResponse) -> Key | None:
    """Airflow's ``_resolve_entity_key``: with ``~`` in the path, the body names the DAG."""
    key = (dag_id, entity) if isinstance(entity, str) else (entity.dag_id or dag_id, entity.dag_run_id)
    if "~" in key:
        if isinstance(entity, str):
            error = (
                "When using wildcard in path, dag_id must be specified in BulkDAGRunBody"
                f" object, not as string for dag_run_id: {entity}"
            )
        else:
            error = (
                "When using wildcard in path, dag_id must be specified in request body for"
                f" dag_run_id: {entity.dag_run_id}"
            )
        res.errors.append({"error": error, "status_code": 400})
        return None
    return key


def _existing(store: Store, keys: set[Key]) -> dict[Key, str]:
    """(dag_id, run_id) -> state of the runs among ``keys`` that exist."""
    out = {}
    with store.read() as conn:
        for dag_id, run_id in keys:
            try:
                out[(dag_id, run_id)] = str(runs_q.get_run(conn, dag_id, run_id)["state"])
            except NotFoundError:
                pass
    return out


def _targets(store: Store, keys: set[Key], on_missing: BulkActionNotOnExistence) -> list[Key]:
    found = _existing(store, keys)
    missing = keys - set(found)
    if on_missing == BulkActionNotOnExistence.FAIL and missing:
        raise HTTPException(404, f"The DagRuns with these identifiers: {sorted(missing)} were not found")
    return sorted(k for k in keys if k in found)


@router.patch("/dags/{dag_id}/dagRuns", response_model=BulkResponse, summary="Bulk Dag Runs")
def bulk_dag_runs(
    dag_id: str, body: BulkBody[BulkDAGRunBody], store: StoreDep, who: EditUser, request: Request
) -> BulkResponse:
    """Mark runs success, failed or queued, and delete runs (not running ones); creating runs
    is refused as in Airflow (trigger them instead)."""

    def create(action: BulkCreateAction[BulkDAGRunBody], res: BulkActionResponse) -> None:
        res.errors.append(
            {
                "error": "Dag Runs bulk create is not supported. Use the trigger Dag Run endpoint instead.",
                "status_code": 405,
            }
        )

    def update(action: BulkUpdateAction[BulkDAGRunBody], res: BulkActionResponse) -> None:
        entities: dict[Key, BulkDAGRunBody] = {}
        for e in action.entities:
            if isinstance(e, str):
                res.errors.append(
                    {
                        "error": f"Bulk update requires a BulkDAGRunBody object, not a string for dag_run_id: {e}",
                        "status_code": 400,
                    }
                )
            elif (key := _key(dag_id, e, res)) is not None:
                entities[key] = e
        if not entities:
            return
        for key in _targets(store, set(entities), action.action_on_non_existence):
            e = entities[key]
            if e.note:
                res.errors.append({"error": f"note cannot be honoured: {NO_NOTES}", "status_code": 400})
                continue
            try:
                if e.state is DagRunMutableStates.QUEUED:
                    control.queue_run(store, *key)
                elif e.state is not None:
                    control.mark_run(store, *key, RunState(e.state.value))
            except ConflictError as err:
                res.errors.append(
                    {"error": f"Setting the state cannot be honoured: {err}", "status_code": 400}
                )
                continue
            res.success.append(f"{key[0]}.{key[1]}")

    def delete(action: BulkDeleteAction[BulkDAGRunBody], res: BulkActionResponse) -> None:
        keys = {k for e in action.entities if (k := _key(dag_id, e, res)) is not None}
        if not keys:
            return
        for run_dag, run_id in _targets(store, keys, action.action_on_non_existence):
            blocked = control.delete_run(store, run_dag, run_id)
            if blocked is not None:
                res.errors.append(
                    {
                        "error": f"The DagRun with dag_id: `{run_dag}` and run_id: `{run_id}` "
                        f"cannot be deleted in {blocked} state",
                        "status_code": 409,
                    }
                )
                continue
            res.success.append(f"{run_dag}.{run_id}")

    out = run_bulk(body, create, update, delete)
    changed(request)
    return out


@router.post(
    "/dags/{dag_id}/clearDagRuns",
    response_model=ClearTaskInstanceCollectionResponse | DAGRunCollectionResponse,
    summary="Clear Dag Runs",
)
def clear_dag_runs(
    dag_id: str, body: BulkDAGRunClearBody, store: StoreDep, who: EditUser, request: Request
) -> ClearTaskInstanceCollectionResponse | DAGRunCollectionResponse:
    """Clear several runs (``~``: of any DAGs, each entry naming its DAG); ``dry_run`` (the
    default) lists the task instances that would be cleared."""
    wildcard = dag_id == "~"
    keys: dict[Key, None] = {}
    if not body.dag_runs:  # partition selectors: no Millstream run has a partition
        if wildcard:
            raise HTTPException(400, "Partition selectors require a concrete dag_id; '~' is not supported.")
        with store.read() as conn:
            get_dag(conn, dag_id)
    for run in body.dag_runs:
        if wildcard:
            if not run.dag_id or run.dag_id == "~":
                raise HTTPException(
                    400,
                    "When the URL dag_id is '~', every entry must provide a concrete dag_id "
                    f"(missing on dag_run_id: {run.dag_run_id!r}).",
                )
            keys[(run.dag_id, run.dag_run_id)] = None
        else:
            if (run.dag_id or dag_id) != dag_id:
                raise HTTPException(
                    400, f"Entry dag_id {run.dag_id!r} does not match the URL dag_id {dag_id!r}."
                )
            keys[(dag_id, run.dag_run_id)] = None
    options: dict[str, Any] = dict(
        only_failed=body.only_failed,
        only_new=body.only_new,
        run_on_latest_version=body.run_on_latest_version,
        note=body.note,
    )
    if body.dry_run:
        tis: list[TaskInstanceResponse | NewTaskResponse] = []
        for run_dag, run_id in keys:
            tis += clear_one(store, run_dag, run_id, dry_run=True, **options)
        return ClearTaskInstanceCollectionResponse(task_instances=tis, total_entries=len(tis))
    runs: list[DAGRunResponse] = []
    for run_dag, run_id in keys:
        clear_one(store, run_dag, run_id, dry_run=False, **options)
        runs.append(one_run(store, run_dag, run_id))
    if runs:
        changed(request)
    return DAGRunCollectionResponse(dag_runs=runs, total_entries=len(runs))


@router.get(
    "/dags/{dag_id}/dagRuns/{dag_run_id}/upstreamAssetEvents",
    response_model=AssetEventCollectionResponse,
    summary="Get Upstream Asset Events",
)
def get_upstream_asset_events(
    dag_id: str, dag_run_id: str, store: StoreDep, who: ReadUser
) -> AssetEventCollectionResponse:
    """The asset events an asset-triggered run consumed (none for other runs)."""
    with store.read() as conn:
        run = get_run(conn, dag_id, dag_run_id)
        rows = []
        for event in assets_q.run_events(conn, run["id"]):
            rows += list(conn.execute(asset_queries.events_filtered(event_id=event["id"])).mappings())
        runs = asset_queries.runs_of_events(conn, [r["id"] for r in rows])
    events = event_responses(rows, runs)
    return AssetEventCollectionResponse(asset_events=events, total_entries=len(events))
