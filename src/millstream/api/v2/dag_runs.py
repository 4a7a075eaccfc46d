"""Airflow 3.3's DAG run endpoints (``/dags/{dag_id}/dagRuns``), mapped onto the operations
``/api/v1`` uses: :func:`control.trigger`, :func:`control.mark_run`, :func:`control.clear`,
:func:`control.queue_run`, :func:`control.delete_run`, and the store's run queries, with
every filter and ordering of a list done in SQL (:func:`runs.filtered`).

Airflow arguments Millstream cannot honour are refused with a 400 that says why, never
accepted and ignored: a note (Millstream keeps none), ``updated_at`` filters and ordering
(not recorded), who triggered a run (not recorded), ``only_new``, re-running on a newer DAG
version, and a ``run_after`` in the future (Millstream starts a triggered run at once).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from millstream import control
from millstream.api.deps import StoreDep, changed
from millstream.api.v2 import dag_runs_bulk
from millstream.api.v2.common import EditUser, PagingDep, ReadUser
from millstream.api.v2.dag_runs_common import (
    BATCH_ORDER,
    LIST_ORDER,
    NO_NOTES,
    RunQuery,
    clear_one,
    decode_cursor,
    encode_cursor,
    get_dag,
    get_run,
    list_query,
    one_run,
    refuse,
    responses,
    run_not_found,
    sort_keys,
    utc,
)
from millstream.api.v2.dag_runs_models import (
    ClearTaskInstanceCollectionResponse,
    DAGRunClearBody,
    DAGRunCollectionResponse,
    DagRunMutableStates,
    DAGRunPatchBody,
    DAGRunResponse,
    DAGRunsBatchBody,
    DagRunType,
    TriggerDAGRunPostBody,
)
from millstream.core.states import RunState
from millstream.errors import ConflictError, NotFoundError, ParamValidationError
from millstream.store import Store, paging
from millstream.store import dags as dags_q
from millstream.store import results as results_q
from millstream.store import runs as runs_q

log = logging.getLogger(__name__)

router = APIRouter(tags=["DagRun"])
router.include_router(dag_runs_bulk.router)

RUNS = "/dags/{dag_id}/dagRuns"
ONE = RUNS + "/{dag_run_id}"

#: Airflow's ``[scheduler] allowed_run_id_pattern`` default, and the ids its runs make.
ALLOWED_RUN_ID = r"^[A-Za-z0-9_.~:+-]+$"
RUN_ID_REGEX = r"^(?:manual|scheduled|asset_triggered)__(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00)$"
#: Airflow's cap on a cursor-paginated list's ``total_entries``.
EXACT_COUNT_LIMIT = 50_000


def run_page(
    store: Store, q: RunQuery, keys: list[tuple[str, bool]], limit: int, offset: int, cursor: str | None
) -> DAGRunCollectionResponse:
    with store.read() as conn:
        select = q.select(conn, keys)
        if cursor is None:
            rows, total = paging.page(conn, select, limit, offset)
            return DAGRunCollectionResponse(dag_runs=responses(conn, rows), total_entries=total)
        start = decode_cursor(cursor) if cursor else 0
        rows, total = paging.page(conn, select, limit + 1, start)
        more, rows = len(rows) > limit, rows[:limit]
        return DAGRunCollectionResponse(
            dag_runs=responses(conn, rows),
            total_entries=min(total, EXACT_COUNT_LIMIT),
            total_entries_limit=EXACT_COUNT_LIMIT,
            next_cursor=encode_cursor(start + limit) if more and rows else None,
            previous_cursor=encode_cursor(max(start - limit, 0), backward=True)
            if start > 0 and rows
            else None,
        )


# -- routes ---------------------------------------------------------------------------------


@router.get(RUNS, response_model=DAGRunCollectionResponse, summary="Get Dag Runs")
def get_dag_runs(
    dag_id: str,
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    q: Annotated[RunQuery, Depends(list_query)],
    order_by_: Annotated[
        list[str] | None,
        Query(alias="order_by", description="Attributes to order by; prefix `-` for descending."),
    ] = None,
    partition_date_gte: date | None = None,
    partition_date_lte: date | None = None,
    cursor: Annotated[
        str | None,
        Query(description="Pass an empty string for the first page, then `next_cursor` from the response."),
    ] = None,
) -> DAGRunCollectionResponse:
    """Runs of one DAG, or of every DAG with `~` as the dag_id; every filter is done in SQL."""
    keys = sort_keys(order_by_, LIST_ORDER, "id")
    partitioned = partition_date_gte is not None or partition_date_lte is not None
    if dag_id == "~":
        if partitioned:
            raise HTTPException(400, "partition_date_gte and partition_date_lte require a specific dag_id.")
    else:
        with store.read() as conn:
            get_dag(conn, dag_id)
        if partitioned:  # no Millstream DAG is partitioned
            raise HTTPException(
                400,
                f"Dag with dag_id: '{dag_id}' is not partitioned; "
                "partition_date_gte and partition_date_lte are not supported.",
            )
        q.only([dag_id])
    return run_page(store, q, keys, page.limit, page.offset, cursor)


@router.post(RUNS + "/list", response_model=DAGRunCollectionResponse, summary="Get List Dag Runs Batch")
def get_list_dag_runs_batch(
    dag_id: Literal["~"], body: DAGRunsBatchBody, store: StoreDep, who: ReadUser
) -> DAGRunCollectionResponse:
    """Runs of any DAGs, the filters in the body."""
    keys = sort_keys([body.order_by] if body.order_by else None, BATCH_ORDER, "id")
    b = body
    q = RunQuery(
        dag_ids=b.dag_ids or None,
        states=[s.value if s is not None else None for s in b.states] if b.states else None,
        ranges={
            "logical_date": (b.logical_date_gte, b.logical_date_gt, b.logical_date_lte, b.logical_date_lt),
            "run_after": (b.run_after_gte, b.run_after_gt, b.run_after_lte, b.run_after_lt),
            "start_date": (b.start_date_gte, b.start_date_gt, b.start_date_lte, b.start_date_lt),
            "end_date": (b.end_date_gte, b.end_date_gt, b.end_date_lte, b.end_date_lt),
            "duration": (b.duration_gte, b.duration_gt, b.duration_lte, b.duration_lt),
        },
        nullable_dates=False,  # the batch list compares start and end dates plainly
        conf_contains=b.conf_contains or None,
    )
    return run_page(store, q, keys, b.page_limit, b.page_offset, None)


@router.get(ONE, response_model=DAGRunResponse, summary="Get Dag Run")
def get_dag_run(dag_id: str, dag_run_id: str, store: StoreDep, who: ReadUser) -> DAGRunResponse:
    return one_run(store, dag_id, dag_run_id)


def check_run_id(run_id: str) -> None:
    """Airflow's rules for a run id a user chooses (its create_dagrun)."""
    if ".." in run_id:
        raise HTTPException(400, f"The run_id '{run_id}' must not contain '..' to prevent path traversal")
    if not re.match(RUN_ID_REGEX, run_id) and not re.match(ALLOWED_RUN_ID, run_id):
        raise HTTPException(
            400,
            f"The run_id provided '{run_id}' does not match regex pattern '{ALLOWED_RUN_ID}' or '{RUN_ID_REGEX}'",
        )
    for kind in DagRunType:
        if kind is not DagRunType.MANUAL and run_id.startswith(f"{kind.value}__"):
            raise HTTPException(
                400, f"A manual DAG run cannot use ID {run_id!r} since it is reserved for {kind.value} runs"
            )


def unique_violation() -> HTTPException:
    """Airflow's 409 for a run id that exists (its unique-constraint handler's body)."""
    error_id = secrets.token_hex(4)
    log.info("Error with id %s: the run id exists", error_id)
    return HTTPException(
        409,
        {
            "reason": "Unique constraint violation",
            "statement": "hidden",
            "orig_error": "hidden",
            "message": "Serious error when handling your request. Check logs for more details - "
            f"you will find it in api server when you look for ID {error_id}",
        },
    )


@router.post(RUNS, response_model=DAGRunResponse, summary="Trigger Dag Run")
def trigger_dag_run(
    dag_id: str, body: TriggerDAGRunPostBody, store: StoreDep, who: EditUser, request: Request
) -> DAGRunResponse:
    """Queue a manual run; a null ``logical_date`` makes a run without one (nor a data
    interval), as Airflow 3 allows."""
    with store.read() as conn:
        try:
            row = dags_q.get_dag(conn, dag_id)
        except NotFoundError:
            row = None
        if row is None or not row["is_active"]:
            raise HTTPException(404, f"Dag with dag_id: '{dag_id}' not found")
        if dags_q.list_import_errors(conn, folder=row["fileloc"]):
            raise HTTPException(400, f"Dag with dag_id: '{dag_id}' has import errors and cannot be triggered")
    if body.partition_key is not None:
        raise HTTPException(
            400, f"Dag '{dag_id}' is not a partitioned Dag and does not accept a partition_key."
        )
    if body.note:
        raise refuse("note", NO_NOTES)
    now = datetime.now(UTC)
    run_after = utc(body.run_after) or now
    if run_after > now:
        raise refuse("A run_after in the future", "Millstream starts a triggered run at once")
    run_id = body.dag_run_id or None  # empty: generated, as Airflow does
    if run_id is not None:
        check_run_id(run_id)
    interval = None
    if body.data_interval_start is not None and body.data_interval_end is not None:
        interval = (body.data_interval_start.astimezone(UTC), body.data_interval_end.astimezone(UTC))
    try:
        created = control.trigger(
            store,
            dag_id,
            conf=body.conf or {},
            run_id=run_id,
            logical_date=body.logical_date.astimezone(UTC) if body.logical_date else None,
            now=now,
            run_after=run_after,
            interval=interval,
            without_logical_date=body.logical_date is None,
        )
    except ConflictError:
        raise unique_violation() from None
    except (ParamValidationError, OverflowError, ValueError) as e:
        raise HTTPException(400, str(e)) from None
    changed(request)
    return one_run(store, dag_id, created)


@router.patch(ONE, response_model=DAGRunResponse, summary="Patch Dag Run")
def patch_dag_run(
    dag_id: str,
    dag_run_id: str,
    body: DAGRunPatchBody,
    store: StoreDep,
    who: EditUser,
    request: Request,
    update_mask: Annotated[list[str] | None, Query()] = None,
) -> DAGRunResponse:
    """Set a run's state: success or failed mark it (its unfinished work too), queued puts a
    finished run back in line (:func:`control.queue_run`)."""
    with store.read() as conn:
        get_run(conn, dag_id, dag_run_id)
    fields = body.model_fields_set
    if update_mask:
        fields = fields.intersection(update_mask)
    if "note" in fields and body.note:
        raise refuse("note", NO_NOTES)
    if "state" in fields and body.state is not None:
        try:
            if body.state is DagRunMutableStates.QUEUED:
                control.queue_run(store, dag_id, dag_run_id)
            else:
                control.mark_run(store, dag_id, dag_run_id, RunState(body.state.value))
        except ConflictError as e:
            raise refuse("Setting the state to queued", str(e)) from None
        except NotFoundError:
            raise run_not_found(dag_id, dag_run_id) from None
        changed(request)
    return one_run(store, dag_id, dag_run_id)


@router.delete(ONE, status_code=204, response_class=Response, summary="Delete Dag Run")
def delete_dag_run(dag_id: str, dag_run_id: str, store: StoreDep, who: EditUser) -> Response:
    """Delete a run with its task instances and results (not while it runs)."""
    try:
        blocked = control.delete_run(store, dag_id, dag_run_id)
    except NotFoundError:
        raise run_not_found(dag_id, dag_run_id) from None
    if blocked is not None:
        raise HTTPException(
            409,
            f"The DagRun with dag_id: `{dag_id}` and run_id: `{dag_run_id}` cannot be deleted in {blocked} state",
        )
    return Response(status_code=204)


@router.post(
    ONE + "/clear",
    response_model=ClearTaskInstanceCollectionResponse | DAGRunResponse,
    summary="Clear Dag Run",
)
def clear_dag_run(
    dag_id: str, dag_run_id: str, body: DAGRunClearBody, store: StoreDep, who: EditUser, request: Request
) -> ClearTaskInstanceCollectionResponse | DAGRunResponse:
    """Clear a run's finished task instances (``only_failed``: its failed ones) so that they
    run again; ``dry_run`` (the default) only lists them. Instances still queued or running
    are left alone, as :func:`control.clear` does."""
    tis = clear_one(
        store,
        dag_id,
        dag_run_id,
        dry_run=body.dry_run,
        only_failed=body.only_failed,
        only_new=body.only_new,
        run_on_latest_version=body.run_on_latest_version,
        note=body.note,
    )
    if not body.dry_run:
        changed(request)
        return one_run(store, dag_id, dag_run_id)
    return ClearTaskInstanceCollectionResponse(task_instances=list(tis), total_entries=len(tis))


@router.get(ONE + "/wait", tags=["experimental"], summary="Experimental: Wait for a dag run to complete")
def wait_dag_run_until_finished(
    dag_id: str,
    dag_run_id: str,
    store: StoreDep,
    who: ReadUser,
    interval: Annotated[float, Query(gt=0.0, description="Seconds to wait between dag run state checks")],
    result: Annotated[list[str] | None, Query(description="Collect the result (XCom) of this task.")] = None,
) -> StreamingResponse:
    """Newline-delimited JSON: the run's state now and every ``interval`` seconds until it has
    finished, then with ``results`` (task id -> return value; a list for a mapped task) of
    the tasks named by ``result``. Millstream DAGs name no result task of their own, so
    without ``result`` there are no results."""
    with store.read() as conn:
        get_run(conn, dag_id, dag_run_id)
    return StreamingResponse(
        _wait(store, dag_id, dag_run_id, interval, result or []), media_type="application/x-ndjson"
    )


def _wait(store: Store, dag_id: str, run_id: str, interval: float, task_ids: list[str]) -> Iterator[str]:
    finished = {RunState.SUCCESS.value, RunState.FAILED.value}
    while True:
        with store.read() as conn:
            try:
                run = runs_q.get_run(conn, dag_id, run_id)
            except NotFoundError:
                return  # deleted while waited for
            line: dict[str, Any] = {"state": run["state"]}
            if run["state"] in finished:
                results = {}
                for task_id in task_ids:
                    values = list(results_q.iter_all(conn, run["id"], task_id, "return_value"))
                    if values:
                        mapped = len(values) > 1 or values[0][0] >= 0
                        results[task_id] = (
                            [json.loads(v) for _, v in values] if mapped else json.loads(values[0][1])
                        )
                if results:
                    line["results"] = results
        yield json.dumps(line) + "\n"
        if run["state"] in finished:
            return
        time.sleep(interval)
