"""Airflow 3.3's task instance endpoints: lists (``~`` for every DAG or run), one instance,
its tries, marking by hand (``PATCH``) and clearing, onto :mod:`millstream.control` and
``store.task_instances.api_query``, which filters, orders and pages in SQL.

What Millstream cannot honour is refused with 400 rather than ignored: ``updated_at_*``
(no such timestamp is kept), ``cursor`` paging, ordering by ``id`` or ``operator`` (derived
values, not columns), notes, ``include_past``/``include_future`` when marking, marking
``skipped``, ``only_running`` and ``reset_dag_runs: false`` when clearing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from millstream import control
from millstream.api.deps import StoreDep, changed
from millstream.api.v2.common import EditUser, OrderBy, PagingDep, ReadUser, not_found
from millstream.api.v2.task_instances_models import (
    ClearTaskInstancesBody,
    PatchTaskInstanceBody,
    TaskInstanceCollectionResponse,
    TaskInstanceHistoryCollectionResponse,
    TaskInstanceHistoryResponse,
    TaskInstanceResponse,
    TaskInstancesBatchBody,
    earlier_try,
    history_dict,
)
from millstream.api.v2.task_instances_query import (
    MAPPED,
    ONE,
    ORDERABLE,
    PREFIX,
    MapIndexP,
    MapIndexQ,
    OptMapIndexQ,
    Specs,
    Str,
    TIQuery,
    TryP,
    dag_or_404,
    find_run,
    latest_spec,
    ranges_of,
    spec_tasks,
    specs_for,
    sql_order,
    states_filter,
    task_rows,
    utc,
)
from millstream.core.model import DagSpec
from millstream.core.states import TaskState
from millstream.errors import ConflictError, ParamValidationError
from millstream.store import task_instances as ti_q

router = APIRouter(tags=["Task Instance"])

# -- reads ------------------------------------------------------------------------------------------------


@router.get(PREFIX, response_model=TaskInstanceCollectionResponse)
def get_task_instances(
    dag_id: str,
    dag_run_id: str,
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    filters: Annotated[TIQuery, Depends()],
    task_id: Str = None,
    task_display_name_pattern: Str = None,
    task_display_name_prefix_pattern: Str = None,
    task_group_id: Str = None,
    dag_id_pattern: Str = None,
    dag_id_prefix_pattern: Str = None,
    run_id_pattern: Str = None,
    run_id_prefix_pattern: Str = None,
    order_by: OrderBy = None,
    cursor: Str = None,
) -> TaskInstanceCollectionResponse:
    """A run's instances; ``~`` for dag_id and dag_run_id lists every DAG's or run's."""
    if cursor is not None:
        raise HTTPException(
            400, "Millstream pages task instances by limit and offset only: cursor is not supported"
        )
    keys = sql_order(order_by, ORDERABLE, "map_index")
    with store.read() as conn:
        run = None
        if dag_run_id != "~":
            if dag_id == "~":
                raise HTTPException(400, "dag_id is required when dag_run_id is specified")
            run = find_run(conn, dag_id, dag_run_id)
            if run is None:
                not_found(f"DagRun with dag_id: `{dag_id}` and run_id: `{dag_run_id}` was not found")
        if dag_id != "~" and run is None:
            dag_or_404(conn, dag_id)
        patterns = [
            (col, how, term)
            for col, how, term in (
                ("dag_id", "contains", dag_id_pattern),
                ("dag_id", "prefix", dag_id_prefix_pattern),
                ("run_id", "contains", run_id_pattern),
                ("run_id", "prefix", run_id_prefix_pattern),
            )
            if term is not None
        ]
        f = filters.api_filter(
            lambda: specs_for(conn, dag_id, run),
            dag_ids=None if dag_id == "~" else [dag_id],
            run_pk=None if run is None else run["id"],
            task_ids=None if task_id is None else [task_id],
            patterns=patterns,
            spec_filters={
                "display_pattern": task_display_name_pattern,
                "display_prefix": task_display_name_prefix_pattern,
                "group_id": task_group_id,
            },
        )
        rows, total = ti_q.api_page(conn, f, keys, page.limit, page.offset)
        return TaskInstanceCollectionResponse(task_instances=Specs(conn).responses(rows), total_entries=total)


@router.post(PREFIX + "/list", response_model=TaskInstanceCollectionResponse)
def get_task_instances_batch(
    dag_id: Literal["~"],
    dag_run_id: Literal["~"],
    body: TaskInstancesBatchBody,
    store: StoreDep,
    who: ReadUser,
) -> TaskInstanceCollectionResponse:
    keys = sql_order(
        [body.order_by] if body.order_by else None,
        ("id", "state", "duration", "start_date", "end_date", "map_index"),
        "map_index",
    )
    if not body.order_by:
        keys = []  # Airflow's default is its primary key: here, each instance's key
    ranges = ranges_of(
        {
            k: v
            for k, v in body.model_dump().items()
            if re.match(r"(run_after|logical_date|start_date|end_date|duration)_", k)
        }
    )
    with store.read() as conn:

        def specs() -> dict[str, DagSpec]:
            every = specs_for(conn, "~", None)
            return {d: s for d, s in every.items() if body.dag_ids is None or d in body.dag_ids}

        tasks = spec_tasks(specs, queues=body.queue or ())
        if body.executor:
            tasks = {}
        f = ti_q.ApiFilter(
            dag_ids=body.dag_ids,
            run_ids=body.dag_run_ids,
            task_ids=body.task_ids,
            states=states_filter(body.state),
            pools=body.pool or None,
            ranges=ranges,
            tasks=tasks,
        )
        rows, total = ti_q.api_page(conn, f, keys, body.page_limit, body.page_offset)
        return TaskInstanceCollectionResponse(task_instances=Specs(conn).responses(rows), total_entries=total)


@router.get(ONE + "/listMapped", response_model=TaskInstanceCollectionResponse)
def get_mapped_task_instances(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    filters: Annotated[TIQuery, Depends()],
    order_by: OrderBy = None,
) -> TaskInstanceCollectionResponse:
    keys = sql_order(order_by, ORDERABLE, "map_index")
    with store.read() as conn:
        run = find_run(conn, dag_id, dag_run_id)
        base = ti_q.ApiFilter(run_pk=run["id"] if run else -1, task_ids=[task_id], mapped_only=True)
        if run is None or ti_q.api_page(conn, base, (), 0, 0)[1] == 0:
            # No instances (no such run, or an empty map): Airflow's 404s, in its order.
            spec = specs_for(conn, dag_id, run)[dag_id]
            if not spec.has_task(task_id):
                not_found(f"Task id {task_id} not found")
            if not spec.task(task_id).is_mapped:
                not_found(f"Task id {task_id} is not mapped")
        f = filters.api_filter(
            lambda: specs_for(conn, dag_id, run),
            run_pk=run["id"] if run else -1,
            task_ids=[task_id],
            mapped_only=True,
        )
        rows, total = ti_q.api_page(conn, f, keys, page.limit, page.offset)
        return TaskInstanceCollectionResponse(task_instances=Specs(conn).responses(rows), total_entries=total)


def _tries(
    dag_id: str, dag_run_id: str, task_id: str, map_index: int, store: Any
) -> list[TaskInstanceHistoryResponse]:
    with store.read() as conn:
        rows = task_rows(conn, dag_id, dag_run_id, task_id, map_index)
        if not rows:
            not_found(
                f"The Task Instance with dag_id: `{dag_id}`, run_id: `{dag_run_id}`, task_id: `{task_id}` "
                f"and map_index: `{map_index}` was not found"
            )
        row = rows[0]
        spec = Specs(conn).of(row["dag_version_id"])
    tries = [earlier_try(row, spec, n) for n in range(1, row["try_number"])]
    return [*tries, TaskInstanceHistoryResponse(**history_dict(row, spec))]


@router.get(ONE + "/tries", response_model=TaskInstanceHistoryCollectionResponse)
def get_task_instance_tries(
    dag_id: str, dag_run_id: str, task_id: str, store: StoreDep, who: ReadUser, map_index: MapIndexQ = -1
) -> TaskInstanceHistoryCollectionResponse:
    """Every try so far. Millstream keeps the current try's details; of earlier tries it
    keeps their logs and rendered fields only, so their state, times, host and pid are null."""
    tries = _tries(dag_id, dag_run_id, task_id, map_index, store)
    return TaskInstanceHistoryCollectionResponse(task_instances=tries, total_entries=len(tries))


@router.get(MAPPED + "/tries", response_model=TaskInstanceHistoryCollectionResponse)
def get_mapped_task_instance_tries(
    dag_id: str, dag_run_id: str, task_id: str, map_index: MapIndexP, store: StoreDep, who: ReadUser
) -> TaskInstanceHistoryCollectionResponse:
    tries = _tries(dag_id, dag_run_id, task_id, map_index, store)
    return TaskInstanceHistoryCollectionResponse(task_instances=tries, total_entries=len(tries))


def _try(
    dag_id: str, dag_run_id: str, task_id: str, n: int, map_index: int, store: Any
) -> TaskInstanceHistoryResponse:
    with store.read() as conn:
        rows = task_rows(conn, dag_id, dag_run_id, task_id, map_index)
        spec = Specs(conn).of(rows[0]["dag_version_id"]) if rows else None
    if rows and n == rows[0]["try_number"]:
        return TaskInstanceHistoryResponse(**history_dict(rows[0], spec))
    if rows and 1 <= n < rows[0]["try_number"]:
        return earlier_try(rows[0], spec, n)
    not_found(
        f"The Task Instance with dag_id: `{dag_id}`, run_id: `{dag_run_id}`, task_id: `{task_id}`, "
        f"try_number: `{n}` and map_index: `{map_index}` was not found"
    )


@router.get(ONE + "/tries/{task_try_number}", response_model=TaskInstanceHistoryResponse)
def get_task_instance_try_details(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    task_try_number: TryP,
    store: StoreDep,
    who: ReadUser,
    map_index: MapIndexQ = -1,
) -> TaskInstanceHistoryResponse:
    return _try(dag_id, dag_run_id, task_id, task_try_number, map_index, store)


@router.get(MAPPED + "/tries/{task_try_number}", response_model=TaskInstanceHistoryResponse)
def get_mapped_task_instance_try_details(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    map_index: MapIndexP,
    task_try_number: TryP,
    store: StoreDep,
    who: ReadUser,
) -> TaskInstanceHistoryResponse:
    return _try(dag_id, dag_run_id, task_id, task_try_number, map_index, store)


@router.get(ONE, response_model=TaskInstanceResponse)
def get_task_instance(
    dag_id: str, dag_run_id: str, task_id: str, store: StoreDep, who: ReadUser
) -> TaskInstanceResponse:
    with store.read() as conn:
        rows = task_rows(conn, dag_id, dag_run_id, task_id, -1)
        if rows:
            return Specs(conn).responses(rows)[0]
        run = find_run(conn, dag_id, dag_run_id)
        if run is not None and ti_q.map_indexes(conn, run["id"], task_id) is not None:
            not_found("Task instance is mapped, add the map_index value to the URL")
    not_found(
        f"The Task Instance with dag_id: `{dag_id}`, run_id: `{dag_run_id}` and task_id: `{task_id}` was not found"
    )


@router.get(MAPPED, response_model=TaskInstanceResponse)
def get_mapped_task_instance(
    dag_id: str, dag_run_id: str, task_id: str, map_index: MapIndexP, store: StoreDep, who: ReadUser
) -> TaskInstanceResponse:
    with store.read() as conn:
        rows = task_rows(conn, dag_id, dag_run_id, task_id, map_index)
        if not rows:
            not_found(
                f"The Mapped Task Instance with dag_id: `{dag_id}`, run_id: `{dag_run_id}`, task_id: `{task_id}`, "
                f"and map_index: `{map_index}` was not found"
            )
        return Specs(conn).responses(rows)[0]


# -- writes ------------------------------------------------------------------------------------------------


def _patch_fields(body: PatchTaskInstanceBody, update_mask: list[str] | None) -> set[str]:
    fields = set(body.model_fields_set)
    if update_mask:
        fields &= set(update_mask)
    if "note" in fields:
        raise HTTPException(400, "Millstream does not keep notes on task instances: note cannot be set")
    if body.include_future or body.include_past:
        raise HTTPException(
            400,
            "Millstream marks task instances within one run: include_future and include_past are not supported",
        )
    if "new_state" in fields and body.new_state == "skipped":
        raise HTTPException(
            400, "Millstream marks task instances success or failed; 'skipped' is not supported"
        )
    return fields


def _patch(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    map_index: int | None,
    body: PatchTaskInstanceBody,
    update_mask: list[str] | None,
    store: Any,
    request: Request,
    *,
    dry_run: bool,
) -> TaskInstanceCollectionResponse:
    with store.read() as conn:
        if not latest_spec(conn, dag_id).has_task(task_id):
            not_found(f"Task '{task_id}' not found in Dag '{dag_id}'")
        if not task_rows(conn, dag_id, dag_run_id, task_id, map_index):
            # Airflow's detail here is a one-element list (a tuple in its code): kept as is.
            raise HTTPException(
                404,
                [
                    f"The Task Instance with dag_id: `{dag_id}`, run_id: `{dag_run_id}`, task_id: `{task_id}` "
                    f"and map_index: `{map_index}` was not found"
                ],
            )
    fields = _patch_fields(body, update_mask)
    marked: list[Any] = []
    if "new_state" in fields:
        try:
            marked = control.mark_task_instances(
                store,
                dag_id,
                dag_run_id,
                task_id,
                TaskState(body.new_state),
                map_index=map_index,
                downstream=body.include_downstream,
                upstream=body.include_upstream,
                dry_run=dry_run,
            )
        except ParamValidationError as e:
            raise HTTPException(400, str(e)) from None
        if not marked and not dry_run:
            raise HTTPException(409, f"Task id {task_id} is already in {body.new_state} state")
        if not dry_run:
            changed(request)
    with store.read() as conn:
        if dry_run and "new_state" in fields:
            wanted = {(m.task_id, m.map_index) for m in marked}
            f = ti_q.ApiFilter(
                dag_ids=[dag_id], run_ids=[dag_run_id], task_ids=sorted({t for t, _ in wanted})
            )
            rows = [
                r
                for r in conn.execute(ti_q.api_query(f, ())).mappings()
                if (r["task_id"], r["map_index"]) in wanted
            ]
        else:
            rows = task_rows(conn, dag_id, dag_run_id, task_id, map_index)
        out = Specs(conn).responses(rows)
    return TaskInstanceCollectionResponse(task_instances=out, total_entries=len(out))


UpdateMask = Annotated[list[str] | None, Query()]


@router.patch(ONE + "/dry_run", response_model=TaskInstanceCollectionResponse)
def patch_task_instance_dry_run(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    body: PatchTaskInstanceBody,
    store: StoreDep,
    who: EditUser,
    request: Request,
    map_index: OptMapIndexQ = None,
    update_mask: UpdateMask = None,
) -> TaskInstanceCollectionResponse:
    """The instances a PATCH would change, as they are now."""
    return _patch(dag_id, dag_run_id, task_id, map_index, body, update_mask, store, request, dry_run=True)


@router.patch(MAPPED + "/dry_run", response_model=TaskInstanceCollectionResponse)
def patch_task_instance_dry_run_by_map_index(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    map_index: MapIndexP,
    body: PatchTaskInstanceBody,
    store: StoreDep,
    who: EditUser,
    request: Request,
    update_mask: UpdateMask = None,
) -> TaskInstanceCollectionResponse:
    return _patch(dag_id, dag_run_id, task_id, map_index, body, update_mask, store, request, dry_run=True)


@router.patch(ONE, response_model=TaskInstanceCollectionResponse)
def patch_task_instance(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    body: PatchTaskInstanceBody,
    store: StoreDep,
    who: EditUser,
    request: Request,
    map_index: OptMapIndexQ = None,
    update_mask: UpdateMask = None,
) -> TaskInstanceCollectionResponse:
    """Mark the task's instances (every map index unless one is given) success or failed,
    with ``include_upstream``/``include_downstream`` in the same run."""
    return _patch(dag_id, dag_run_id, task_id, map_index, body, update_mask, store, request, dry_run=False)


@router.patch(MAPPED, response_model=TaskInstanceCollectionResponse)
def patch_task_instance_by_map_index(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    map_index: MapIndexP,
    body: PatchTaskInstanceBody,
    store: StoreDep,
    who: EditUser,
    request: Request,
    update_mask: UpdateMask = None,
) -> TaskInstanceCollectionResponse:
    return _patch(dag_id, dag_run_id, task_id, map_index, body, update_mask, store, request, dry_run=False)


def _clear_refusals(body: ClearTaskInstancesBody) -> None:
    if body.only_running:
        raise HTTPException(
            400, "Millstream clears finished task instances only (running ones are left alone): only_running"
        )
    if not body.reset_dag_runs and not body.dry_run:
        raise HTTPException(
            400, "Millstream always reopens a run whose task instances are cleared: reset_dag_runs false"
        )
    if body.run_on_latest_version:
        raise HTTPException(400, "Millstream reruns cleared task instances with their run's DAG version")
    if body.note is not None:
        raise HTTPException(400, "Millstream does not keep notes on task instances: note cannot be set")


def _clear_groups(task_ids: Sequence[str | tuple[str, int]] | None) -> list[tuple[str | None, int | None]]:
    """(task regex, map index) per clear: plain ids together, [task_id, map_index] pairs by map index."""
    if task_ids is None:
        return [(None, None)]
    plain = [t for t in task_ids if isinstance(t, str)]
    by_index: dict[int, list[str]] = {}
    for t in task_ids:
        if not isinstance(t, str) and t[0] not in plain:
            by_index.setdefault(t[1], []).append(t[0])
    groups: list[tuple[str | None, int | None]] = []
    if plain:
        groups.append(("^(" + "|".join(re.escape(t) for t in plain) + ")$", None))
    for index, ids in sorted(by_index.items()):
        groups.append(("^(" + "|".join(re.escape(t) for t in ids) + ")$", index))
    return groups


@router.post("/dags/{dag_id}/clearTaskInstances", response_model=TaskInstanceCollectionResponse)
def post_clear_task_instances(
    dag_id: str, body: ClearTaskInstancesBody, store: StoreDep, who: EditUser, request: Request
) -> TaskInstanceCollectionResponse:
    """Clear (or, with ``dry_run``, the default, list) the task instances the body selects:
    one run, or the runs whose logical date is in [start_date, end_date]."""
    _clear_refusals(body)
    start, end, run_id = utc(body.start_date), utc(body.end_date), body.dag_run_id
    with store.read() as conn:
        latest_spec(conn, dag_id)
        if run_id is not None:
            run = find_run(conn, dag_id, run_id)
            if run is None:
                not_found(f"Dag Run id {run_id} not found in dag {dag_id}")
            if (body.include_past or body.include_future) and run["logical_date"] is None:
                raise HTTPException(
                    400,
                    "Cannot use include_past or include_future with no logical_date"
                    "(e.g. manually or asset-triggered).",
                )
            if body.include_past or body.include_future:
                start = end = run["logical_date"]
                run_id = None
    if body.include_past:
        start = None
    if body.include_future:
        end = None
    cleared = []
    try:
        for regex, index in _clear_groups(body.task_ids):
            cleared += control.clear(
                store,
                dag_id,
                run_id=run_id,
                start_date=start,
                end_date=end,
                task_regex=regex,
                map_index=index,
                downstream=body.include_downstream,
                upstream=body.include_upstream,
                only_failed=body.only_failed,
                dry_run=body.dry_run,
            )
    except ConflictError as e:
        raise HTTPException(409, str(e)) from None
    if cleared and not body.dry_run:
        changed(request)
    wanted = {(c.run_id, c.task_id, c.map_index) for c in cleared}
    collapsed = {(c.run_id, c.task_id) for c in cleared}
    with store.read() as conn:
        rows = []
        if cleared:
            f = ti_q.ApiFilter(
                dag_ids=[dag_id],
                run_ids=sorted({c.run_id for c in cleared}),
                task_ids=sorted({c.task_id for c in cleared}),
            )
            for r in conn.execute(ti_q.api_query(f, ())).mappings():
                key = (r["run_id"], r["task_id"])
                # A mapped task cleared with what it maps over is back to its placeholder.
                if (*key, r["map_index"]) in wanted or (r["map_index"] == -1 and key in collapsed):
                    rows.append(r)
        out = Specs(conn).responses(rows)
    return TaskInstanceCollectionResponse(task_instances=out, total_entries=len(out))


@router.delete(ONE, status_code=204)
def delete_task_instance(
    dag_id: str, dag_run_id: str, task_id: str, store: StoreDep, who: EditUser, map_index: MapIndexQ = -1
) -> None:
    """Refused after Airflow's 404: a run's instances are its DAG version's tasks, and the
    scheduler would only miss one deleted from under it. Clear it to run it again."""
    with store.read() as conn:
        if not task_rows(conn, dag_id, dag_run_id, task_id, map_index):
            not_found(
                f"The Task Instance with dag_id: `{dag_id}`, run_id: `{dag_run_id}`, task_id: `{task_id}` "
                f"and map_index: `{map_index}` was not found"
            )
    raise HTTPException(
        400,
        "Millstream does not delete task instances (a run keeps one per task of its DAG version); "
        "clear it to run it again",
    )
