"""DAGs: list, detail, pause/unpause, import errors, and the grid of runs x tasks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from millstream import control
from millstream.api.auth import Admin, User
from millstream.api.deps import PagingDep, StoreDep, changed, run_out, value
from millstream.api.graph import topological
from millstream.api.query import STRICT
from millstream.api.schemas import (
    DagDetail,
    DagOut,
    DagPatch,
    Grid,
    GridTask,
    ImportErrorOut,
    Page,
    RunBrief,
    TaskOut,
)
from millstream.core.assets import describe
from millstream.core.states import RunState
from millstream.store import dags as dags_q
from millstream.store import paging
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q

router = APIRouter(tags=["DAGs"], dependencies=STRICT)


def _dag_out(row, errors: dict[str, str], recent) -> DagOut:  # type: ignore[no-untyped-def]
    return DagOut(
        dag_id=row["dag_id"],
        dag_display_name=row["display_name"] or row["dag_id"],
        owner_links=dict(row["owner_links"] or {}),
        description=row["description"],
        fileloc=row["fileloc"],
        is_paused=row["is_paused"],
        is_active=row["is_active"],
        schedule=row["timetable_summary"],
        tags=list(row["tags"] or []),
        next_run_logical_date=row["next_run_logical_date"],
        next_run_after=row["next_run_after"],
        last_parsed_at=row["last_parsed_at"],
        import_error=errors.get(row["fileloc"]),
        recent_runs=[
            RunBrief(run_id=r["run_id"], state=r["state"], logical_date=r["logical_date"]) for r in recent
        ],
    )


@router.get("/dags", response_model=Page[DagOut], summary="List DAGs")
def list_dags(
    store: StoreDep,
    who: User,
    page: PagingDep,
    dag_id_pattern: Annotated[str | None, Query(max_length=250, description="Part of the dag_id.")] = None,
    tag: Annotated[str | None, Query(max_length=250)] = None,
    paused: bool | None = None,
) -> Page[DagOut]:
    with store.read() as conn:
        rows = dags_q.list_dags(conn)
        errors = {e["filename"]: e["message"] for e in dags_q.list_import_errors(conn)}
        if dag_id_pattern:
            rows = [r for r in rows if dag_id_pattern.lower() in r["dag_id"].lower()]
        if tag:
            rows = [r for r in rows if tag in (r["tags"] or [])]
        if paused is not None:
            rows = [r for r in rows if bool(r["is_paused"]) == paused]
        shown = page.window(rows)
        recent = runs_q.recent(conn, [r["dag_id"] for r in shown], 5)
    items = [_dag_out(r, errors, recent[r["dag_id"]]) for r in shown]
    return page.of(items, len(rows))


@router.get("/dags/{dag_id}", response_model=DagDetail, summary="One DAG with its tasks")
def get_dag(dag_id: str, store: StoreDep, who: User) -> DagDetail:
    with store.read() as conn:
        row = dags_q.get_dag(conn, dag_id)
        _, spec = dags_q.latest_spec(conn, dag_id)
        errors = {e["filename"]: e["message"] for e in dags_q.list_import_errors(conn)}
        recent = runs_q.recent(conn, [dag_id], 5)[dag_id]
    base = _dag_out(row, errors, recent)
    tasks = [
        TaskOut(
            task_id=t.task_id,
            display_name=t.display_name or t.task_id,
            kind=t.kind,
            upstream=list(t.upstream),
            downstream=list(spec.downstream(t.task_id)),
            trigger_rule=str(t.trigger_rule.value),
            is_setup=t.is_setup,
            is_teardown=t.is_teardown,
            is_mapped=t.is_mapped,
            retries=t.retries,
            pool=t.pool,
            queue=t.queue,
            outlets=list(t.outlets),
            inlets=list(t.inlets),
            group_id=t.group_id,
            doc=t.doc,
        )
        for t in (spec.task(i) for i in topological(spec))
    ]
    trigger = dict(spec.asset_trigger) if spec.asset_trigger else None
    if trigger is not None:
        trigger["description"] = describe(trigger["condition"])
    return DagDetail(
        **base.model_dump(),
        start_date=spec.start_date,
        end_date=spec.end_date,
        catchup=spec.catchup,
        max_active_runs=spec.max_active_runs,
        max_active_tasks=spec.max_active_tasks,
        params=dict(spec.params),
        asset_trigger=trigger,
        tasks=tasks,
    )


@router.patch("/dags/{dag_id}", response_model=DagOut, summary="Pause or unpause a DAG")
def patch_dag(dag_id: str, body: DagPatch, store: StoreDep, who: Admin, request: Request) -> DagOut:
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)  # 404 before any write
    control.set_paused(store, dag_id, body.is_paused)
    changed(request)
    with store.read() as conn:
        row = dags_q.get_dag(conn, dag_id)
        errors = {e["filename"]: e["message"] for e in dags_q.list_import_errors(conn)}
        recent = runs_q.recent(conn, [dag_id], 5)[dag_id]
    return _dag_out(row, errors, recent)


@router.get("/import-errors", response_model=Page[ImportErrorOut], summary="DAG files that failed to import")
def import_errors(
    store: StoreDep,
    who: User,
    page: PagingDep,
    filename_pattern: Annotated[
        str | None, Query(max_length=1000, description="Part of the file name.")
    ] = None,
) -> Page[ImportErrorOut]:
    with store.read() as conn:
        rows = dags_q.list_import_errors(conn)
    if filename_pattern:
        rows = [r for r in rows if filename_pattern in r["filename"]]
    items = [ImportErrorOut(**dict(r)) for r in page.window(rows)]
    return page.of(items, len(rows))


@router.get("/dags/{dag_id}/grid", response_model=Grid, summary="Runs x tasks with instance counts per state")
def grid(
    dag_id: str,
    store: StoreDep,
    who: User,
    page: PagingDep,
    state: Annotated[RunState | None, Query(description="Only runs in this state.")] = None,
) -> Grid:
    """Runs by logical date, latest first. A mapped task is one row whose cell counts its
    instances by state, whatever their number: the grid costs the same for 3 instances as
    for 10 000."""
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        _, spec = dags_q.latest_spec(conn, dag_id)
        runs, total = paging.page(
            conn, runs_q.query(dag_id, state=value(state), by_logical_date=True), page.limit, page.offset
        )
        counts = ti_q.state_counts(conn, [r["id"] for r in runs])
    by_pk = {r["id"]: r["run_id"] for r in runs}
    cells: dict[str, dict[str, dict[str, int]]] = {r["run_id"]: {} for r in runs}
    mapped: dict[str, list[str]] = {}
    for run_pk, task_id, st, n, has_index in counts:
        cells[by_pk[run_pk]].setdefault(task_id, {})[st] = n
        if has_index and task_id not in mapped.setdefault(by_pk[run_pk], []):
            mapped[by_pk[run_pk]].append(task_id)
    order = topological(spec)
    known = set(order)
    extra = sorted({t for c in cells.values() for t in c} - known)  # tasks older versions had
    tasks = [
        GridTask(
            task_id=t,
            display_name=spec.task(t).display_name,
            is_mapped=spec.task(t).is_mapped,
            is_setup=spec.task(t).is_setup,
            is_teardown=spec.task(t).is_teardown,
            group_id=spec.task(t).group_id,
        )
        for t in order
    ] + [
        GridTask(task_id=t, is_mapped=False, is_setup=False, is_teardown=False, group_id=None) for t in extra
    ]
    return Grid(tasks=tasks, runs=[run_out(r) for r in runs], total_runs=total, cells=cells, mapped=mapped)
