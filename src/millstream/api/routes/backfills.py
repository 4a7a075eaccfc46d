"""Backfills: create (or plan, dry), list, progress, pause / resume / cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from millstream import control
from millstream.api.auth import Admin, User
from millstream.api.deps import PagingDep, StoreDep, changed
from millstream.api.query import STRICT
from millstream.api.schemas import (
    MAX_INT,
    BackfillBody,
    BackfillOut,
    BackfillPlan,
    BackfillState,
    Page,
    PlannedRun,
)
from millstream.errors import ParamValidationError
from millstream.store import backfills as backfills_q
from millstream.store import dags as dags_q
from millstream.store import paging

router = APIRouter(tags=["Backfills"], dependencies=STRICT)

BackfillId = Annotated[int, Path(ge=1, le=MAX_INT)]


def backfill_out(b: Any, progress: dict[str, int]) -> BackfillOut:
    return BackfillOut(
        **{k: b[k] for k in BackfillOut.model_fields if k in b},
        progress=progress,
        total_runs=sum(progress.values()),
        done_runs=progress.get("success", 0) + progress.get("failed", 0),
    )


def create_from_body(store: Any, body: Any, conf: Any, dry_run: bool) -> tuple[int | None, list[Any]]:
    """``control.create_backfill`` with a body's fields (``/api/v1``'s or ``/api/v2``'s: they
    differ only in what the conf is called, so it is passed on its own); errors are the caller's."""
    return control.create_backfill(
        store,
        body.dag_id,
        body.from_date,
        body.to_date,
        reprocess=body.reprocess_behavior,
        max_active_runs=body.max_active_runs,
        run_backwards=body.run_backwards,
        conf=conf,
        dry_run=dry_run,
    )


def _create(store: Any, body: BackfillBody, dry_run: bool) -> tuple[int | None, list[Any]]:
    try:
        return create_from_body(store, body, body.conf, dry_run)
    except (OverflowError, ValueError) as e:  # dates the schedule cannot place
        raise ParamValidationError(f"body.from_date/to_date: {e}") from None


@router.post("/backfills", response_model=BackfillOut, status_code=201, summary="Create a backfill")
def create(body: BackfillBody, store: StoreDep, who: Admin, request: Request) -> BackfillOut:
    """Runs over every interval of the range; existing runs follow ``reprocess_behavior``.
    A running scheduler works through it, ``max_active_runs`` at a time."""
    backfill_id, _ = _create(store, body, dry_run=False)
    assert backfill_id is not None
    changed(request)
    with store.read() as conn:
        return backfill_out(backfills_q.get(conn, backfill_id), backfills_q.progress(conn, backfill_id))


@router.post("/backfills/dry-run", response_model=BackfillPlan, summary="What a backfill would do")
def dry_run(body: BackfillBody, store: StoreDep, who: User) -> BackfillPlan:
    _, items = _create(store, body, dry_run=True)
    planned = [PlannedRun(**vars(i)) for i in items]
    return BackfillPlan(
        items=planned,
        create=sum(i.action == "create" for i in items),
        rerun=sum(i.action == "rerun" for i in items),
        skip=sum(i.action == "skip" for i in items),
    )


@router.get("/backfills", response_model=Page[BackfillOut], summary="List backfills, newest first")
def list_backfills(
    store: StoreDep,
    who: User,
    page: PagingDep,
    dag_id: Annotated[str | None, Query(max_length=250, description="Only this DAG's backfills.")] = None,
    state: Annotated[BackfillState | None, Query(description="Only backfills in this state.")] = None,
) -> Page[BackfillOut]:
    with store.read() as conn:
        if dag_id is not None:
            dags_q.get_dag(conn, dag_id)  # 404: a typo is not an empty list
        rows, total = paging.page(
            conn, backfills_q.query(dag_id=dag_id, state=state), page.limit, page.offset
        )
        items = [backfill_out(b, backfills_q.progress(conn, b["id"])) for b in rows]
    return page.of(items, total)


@router.get("/backfills/{backfill_id}", response_model=BackfillOut, summary="One backfill with its progress")
def get(backfill_id: BackfillId, store: StoreDep, who: User) -> BackfillOut:
    with store.read() as conn:
        return backfill_out(backfills_q.get(conn, backfill_id), backfills_q.progress(conn, backfill_id))


def _act(backfill_id: int, action: str, store: Any, request: Request) -> BackfillOut:
    with store.read() as conn:
        backfills_q.get(conn, backfill_id)
    control.set_backfill_state(store, backfill_id, action)
    changed(request)
    with store.read() as conn:
        return backfill_out(backfills_q.get(conn, backfill_id), backfills_q.progress(conn, backfill_id))


@router.post("/backfills/{backfill_id}/pause", response_model=BackfillOut, summary="Start no more runs")
def pause(backfill_id: BackfillId, store: StoreDep, who: Admin, request: Request) -> BackfillOut:
    return _act(backfill_id, "pause", store, request)


@router.post("/backfills/{backfill_id}/resume", response_model=BackfillOut, summary="Start runs again")
def resume(backfill_id: BackfillId, store: StoreDep, who: Admin, request: Request) -> BackfillOut:
    return _act(backfill_id, "resume", store, request)


@router.post(
    "/backfills/{backfill_id}/cancel",
    response_model=BackfillOut,
    summary="Stop for good (running runs finish)",
)
def cancel(backfill_id: BackfillId, store: StoreDep, who: Admin, request: Request) -> BackfillOut:
    return _act(backfill_id, "cancel", store, request)
