"""Runs and their task instances: list, trigger, mark, clear, and attempt logs."""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError

from millstream import control
from millstream.api.auth import Admin, User
from millstream.api.deps import PagingDep, SettingsDep, StoreDep, changed, run_out, ti_out, value
from millstream.api.query import STRICT
from millstream.api.schemas import (
    MAX_INT,
    Changed,
    ChangedOut,
    ClearBody,
    LogOut,
    MarkBody,
    Page,
    RenderedOut,
    RunOut,
    RunPatch,
    RunType,
    TaskInstanceOut,
    TriggerBody,
    When,
)
from millstream.core.states import TERMINAL_TASK_STATES, RunState, TaskState
from millstream.errors import NotFoundError, ParamValidationError
from millstream.store import backfills as backfills_q
from millstream.store import dags as dags_q
from millstream.store import paging
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q

router = APIRouter(tags=["Runs and task instances"], dependencies=STRICT)

MapIndex = Annotated[int, Query(ge=-1, le=MAX_INT, description="-1 for a task that is not mapped.")]
#: At most this much of a log per request; ask again from ``next_offset`` for the rest.
LOG_CHUNK = 1024 * 1024


@router.get("/dags/{dag_id}/runs", response_model=Page[RunOut], summary="List a DAG's runs, newest first")
def list_runs(
    dag_id: str,
    store: StoreDep,
    who: User,
    page: PagingDep,
    state: Annotated[RunState | None, Query(description="Only runs in this state.")] = None,
    run_type: Annotated[RunType | None, Query(description="Only runs made this way.")] = None,
    logical_date_gte: When | None = None,
    logical_date_lte: When | None = None,
    backfill_id: Annotated[
        int | None, Query(ge=0, le=MAX_INT, description="Only this backfill's runs.")
    ] = None,
) -> Page[RunOut]:
    if logical_date_gte and logical_date_lte and logical_date_gte > logical_date_lte:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "logical_date_gte"),
                    "msg": f"is after logical_date_lte ({logical_date_lte.isoformat()}): the range is empty",
                    "type": "value_error",
                }
            ]
        )
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        if backfill_id is not None:
            backfills_q.get(conn, backfill_id)  # 404: a typo is not an empty list
        q = runs_q.query(
            dag_id,
            state=value(state),
            run_type=run_type,
            logical_date_gte=logical_date_gte,
            logical_date_lte=logical_date_lte,
            backfill_id=backfill_id,
        )
        rows, total = paging.page(conn, q, page.limit, page.offset)
    return page.of([run_out(r) for r in rows], total)


@router.post(
    "/dags/{dag_id}/runs", response_model=RunOut, status_code=201, summary="Trigger a run (with conf)"
)
def trigger_run(dag_id: str, body: TriggerBody, store: StoreDep, who: Admin, request: Request) -> RunOut:
    try:
        run_id = control.trigger(
            store, dag_id, conf=body.conf, run_id=body.run_id, logical_date=body.logical_date
        )
    except (OverflowError, ValueError) as e:  # a logical date the schedule cannot place
        raise ParamValidationError(f"body.logical_date: {e}") from None
    changed(request)
    with store.read() as conn:
        return run_out(runs_q.get_run(conn, dag_id, run_id))


@router.get("/dags/{dag_id}/runs/{run_id}", response_model=RunOut, summary="One run")
def get_run(dag_id: str, run_id: str, store: StoreDep, who: User) -> RunOut:
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        return run_out(runs_q.get_run(conn, dag_id, run_id))


@router.patch("/dags/{dag_id}/runs/{run_id}", response_model=RunOut, summary="Mark a run success or failed")
def mark_run(
    dag_id: str, run_id: str, body: RunPatch, store: StoreDep, who: Admin, request: Request
) -> RunOut:
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
    control.mark_run(store, dag_id, run_id, RunState(body.state))
    changed(request)
    with store.read() as conn:
        return run_out(runs_q.get_run(conn, dag_id, run_id))


@router.get(
    "/dags/{dag_id}/runs/{run_id}/tasks",
    response_model=Page[TaskInstanceOut],
    summary="A run's task instances (mapped ones with map_index and label)",
)
def list_task_instances(
    dag_id: str,
    run_id: str,
    store: StoreDep,
    who: User,
    page: PagingDep,
    task_id: Annotated[str | None, Query(max_length=250, description="Only this task's instances.")] = None,
    state: Annotated[TaskState | None, Query(description="Only instances in this state.")] = None,
    map_index: Annotated[int | None, Query(ge=-1, le=MAX_INT)] = None,
    label: Annotated[
        str | None, Query(max_length=1000, description="Part of the label (case folded for ASCII on SQLite).")
    ] = None,
    search: Annotated[
        str | None, Query(max_length=1000, description="A map index, or part of the label.")
    ] = None,
) -> Page[TaskInstanceOut]:
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        run = runs_q.get_run(conn, dag_id, run_id)
        if task_id is not None and ti_q.map_indexes(conn, run["id"], task_id) is None:
            # Not an instance yet (the run is queued) is fine if the run's DAG version has it.
            spec = dags_q.spec_for_version(conn, run["dag_version_id"])
            if not spec.has_task(task_id):
                raise NotFoundError(
                    f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}; its tasks are {spec.task_ids}"
                )
        q = ti_q.query_for_run(
            run["id"],
            task_id=task_id,
            state=value(state),
            map_index=map_index,
            label=label,
            search=search or None,
        )
        rows, total = paging.page(conn, q, page.limit, page.offset)
    return page.of([ti_out(r, run_id) for r in rows], total)


@router.get(
    "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
    response_model=TaskInstanceOut,
    summary="One task instance",
)
def get_task_instance(
    dag_id: str, run_id: str, task_id: str, store: StoreDep, who: User, map_index: MapIndex = -1
) -> TaskInstanceOut:
    _, ti = control.find_task_instance(store, dag_id, run_id, task_id, map_index)
    return ti_out(ti, run_id)


def _read_chunk(f: BinaryIO, offset: int, ended: bool) -> tuple[str, int, int]:
    """(text, next offset, size) of at most LOG_CHUNK bytes from byte ``offset``. A UTF-8
    character cut by the chunk's end is left for the next call rather than shown broken,
    unless it is the end of an attempt that has ended (then the tail is what it is)."""
    size = f.seek(0, os.SEEK_END)
    offset = min(offset, size)
    f.seek(offset)
    data = f.read(LOG_CHUNK)
    end = offset + len(data)
    try:
        return data.decode("utf-8"), end, size
    except UnicodeDecodeError as e:
        more_to_come = not ended or end < size
        if more_to_come and e.reason == "unexpected end of data" and e.start >= len(data) - 3:
            return data[: e.start].decode("utf-8", errors="replace"), offset + e.start, size
        return data.decode("utf-8", errors="replace"), end, size


@router.get(
    "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/{try_number}",
    response_model=LogOut,
    summary="The log of one attempt, from a byte offset (poll with next_offset to follow it)",
)
def get_log(
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: Annotated[int, PathParam(ge=1, le=MAX_INT)],
    store: StoreDep,
    settings: SettingsDep,
    who: User,
    map_index: MapIndex = -1,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> LogOut:
    from millstream.worker.runner import log_path

    run, ti = control.find_task_instance(store, dag_id, run_id, task_id, map_index)
    if ti["try_number"] < try_number:
        raise NotFoundError(
            f"task {task_id!r} has had {ti['try_number']} attempt(s) in run {run_id!r}; there is no attempt {try_number}"
        )
    ended = (
        try_number < ti["try_number"]
        or TaskState(ti["state"]) in TERMINAL_TASK_STATES
        or ti["state"] in (TaskState.UP_FOR_RETRY.value, TaskState.UP_FOR_RESCHEDULE.value)
    )
    f: BinaryIO | None
    try:
        f = open(log_path(settings.logs_folder, dag_id, run_id, task_id, map_index, try_number), "rb")  # noqa: SIM115
    except FileNotFoundError:
        f = None
    if f is None and ended and settings.object_store_url:
        # Run on another host (a Celery worker): the copy it left in the object store.
        from millstream.store import objects

        url = objects.log_url(settings.object_store_url, dag_id, run["id"], task_id, map_index, try_number)
        f = objects.open_bytes(url)
    if f is None:
        return LogOut(
            try_number=try_number, content="", offset=offset, next_offset=offset, complete=ended, found=False
        )
    with f:
        content, next_offset, size = _read_chunk(f, offset, ended)
    return LogOut(
        try_number=try_number,
        content=content,
        offset=offset,
        next_offset=next_offset,
        complete=ended and next_offset >= size,
        found=True,
    )


@router.get(
    "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/rendered",
    response_model=RenderedOut,
    summary="The template fields of one attempt as they were rendered (secrets masked)",
)
def get_rendered(
    dag_id: str,
    run_id: str,
    task_id: str,
    store: StoreDep,
    who: User,
    map_index: MapIndex = -1,
    try_number: Annotated[int | None, Query(ge=1, le=MAX_INT, description="Default: the newest.")] = None,
) -> RenderedOut:
    from millstream.store import rendered as rendered_q

    run, _ = control.find_task_instance(store, dag_id, run_id, task_id, map_index)
    with store.read() as conn:
        got = rendered_q.get(conn, run["id"], task_id, map_index, try_number)
        spec = dags_q.spec_for_version(conn, run["dag_version_id"])
    renderers = dict(spec.task(task_id).renderers) if spec.has_task(task_id) else {}
    if got is None:
        which = f"attempt {try_number}" if try_number else "no attempt"
        raise NotFoundError(
            f"{which} of task {task_id!r} in run {run_id!r} kept rendered fields: they are kept when a "
            "template was rendered, and this task's fields held no template"
        )
    return RenderedOut(try_number=got[0], fields=got[1], renderers=renderers)


def _changed(items: list[Any], dry_run: bool = False) -> Changed:
    out = [
        ChangedOut(run_id=c.run_id, task_id=c.task_id, map_index=c.map_index, state=c.state) for c in items
    ]
    return Changed(count=len(out), items=out[:1000], dry_run=dry_run)


@router.post("/dags/{dag_id}/clear", response_model=Changed, summary="Clear task instances so they run again")
def clear(dag_id: str, body: ClearBody, store: StoreDep, who: Admin, request: Request) -> Changed:
    """Selects runs by ``run_id`` or the logical date range, tasks by ``task_ids`` or
    ``task_regex``; with ``dry_run``, says what would be cleared and changes nothing."""
    if body.task_ids is not None and body.task_regex is not None:
        raise ParamValidationError("give task_ids or task_regex, not both")
    regex = body.task_regex
    if body.task_ids is not None:
        regex = "^(" + "|".join(re.escape(t) for t in body.task_ids) + ")$" if body.task_ids else "(?!)"
    cleared = control.clear(
        store,
        dag_id,
        run_id=body.run_id,
        start_date=body.start_date,
        end_date=body.end_date,
        task_regex=regex,
        map_index=body.map_index,
        downstream=body.downstream,
        upstream=body.upstream,
        only_failed=body.only_failed,
        dry_run=body.dry_run,
    )
    if not body.dry_run:
        changed(request)
    return _changed(cleared, body.dry_run)


@router.post(
    "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
    response_model=Changed,
    summary="Mark task instances success or failed",
)
def mark_task(
    dag_id: str, run_id: str, task_id: str, body: MarkBody, store: StoreDep, who: Admin, request: Request
) -> Changed:
    marked = control.mark_task_instances(
        store,
        dag_id,
        run_id,
        task_id,
        TaskState(body.state),
        map_index=body.map_index,
        downstream=body.downstream,
        upstream=body.upstream,
    )
    changed(request)
    return _changed(marked)
