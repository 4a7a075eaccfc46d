"""Airflow 3.3's backfill endpoints (``routes/public/backfills.py``) over Millstream's
backfills: ``control.create_backfill`` / ``set_backfill_state``, as ``/api/v1/backfills``.

Millstream keeps a backfill's ``state`` (running, paused, completed, cancelled); Airflow keeps
``is_paused`` and ``completed_at``. A cancelled backfill is paused and completed in Airflow's
terms, as Airflow's cancel leaves it. Millstream does not record when a backfill was last
paused or resumed, so ``updated_at`` is its last recorded change: completion, else creation.

As in Airflow, a DAG has at most one backfill that is not completed: creating another is a
409. Millstream reruns an existing run on the DAG version it ran with, so
``run_on_latest_version: true`` with a reprocess behavior that reruns runs is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from millstream import control
from millstream.api.deps import StoreDep, changed
from millstream.api.errors import for_http
from millstream.api.routes.backfills import create_from_body
from millstream.api.schemas import JsonObject, When
from millstream.api.v2.common import EditUser, OrderBy, Out, PagingDep, ReadUser, not_found, order_by
from millstream.errors import ConflictError, NotFoundError, ParamValidationError
from millstream.store import Store, paging
from millstream.store import backfills as backfills_q
from millstream.store import dags as dags_q
from millstream.store.tables import backfill as backfill_table

router = APIRouter(tags=["Backfill"], prefix="/backfills")

BACKFILL_NOT_FOUND = "Backfill not found"
#: Millstream's states in which a backfill is over (Airflow: ``completed_at`` is set).
DONE = ("completed", "cancelled")

BackfillId = Annotated[int, Path(ge=0)]


class BackfillPostBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dag_id: str
    from_date: When
    to_date: When
    run_backwards: bool = False
    dag_run_conf: JsonObject | None = None
    reprocess_behavior: Literal["failed", "completed", "none"] = "none"
    max_active_runs: int = 10
    run_on_latest_version: bool | None = Field(
        default=None,
        description="Millstream runs new runs on the latest DAG version and reruns existing runs on "
        "the version they ran with; true is refused when runs would be rerun.",
    )


class BackfillResponse(Out):
    id: int
    dag_id: str
    from_date: datetime
    to_date: datetime
    dag_run_conf: dict[str, Any] | None
    is_paused: bool
    reprocess_behavior: Literal["failed", "completed", "none"]
    max_active_runs: int
    created_at: datetime
    completed_at: datetime | None
    updated_at: datetime
    dag_display_name: str


class BackfillCollectionResponse(Out):
    backfills: list[BackfillResponse]
    total_entries: int


class DryRunBackfillResponse(Out):
    logical_date: datetime | None
    partition_key: str | None = None
    partition_date: datetime | None = None


class DryRunBackfillCollectionResponse(Out):
    backfills: list[DryRunBackfillResponse]
    total_entries: int


def _display_names(store: Store, dag_ids: set[str]) -> dict[str, str]:
    out = {}
    with store.read() as conn:
        for dag_id in dag_ids:
            try:
                out[dag_id] = dags_q.get_dag(conn, dag_id)["display_name"] or dag_id
            except NotFoundError:
                out[dag_id] = dag_id
    return out


def backfill_response(b: Any, display_name: str) -> BackfillResponse:
    return BackfillResponse(
        id=b["id"],
        dag_id=b["dag_id"],
        from_date=b["from_date"],
        to_date=b["to_date"],
        dag_run_conf=dict(b["conf"]) if b["conf"] is not None else None,
        is_paused=b["state"] in ("paused", "cancelled"),
        reprocess_behavior=b["reprocess_behavior"],
        max_active_runs=b["max_active_runs"],
        created_at=b["created_at"],
        completed_at=b["completed_at"],
        updated_at=b["completed_at"] or b["created_at"],
        dag_display_name=display_name,
    )


def _one(store: Store, backfill_id: int) -> BackfillResponse:
    try:
        with store.read() as conn:
            b = backfills_q.get(conn, backfill_id)
    except NotFoundError:
        not_found(BACKFILL_NOT_FOUND)
    return backfill_response(b, _display_names(store, {b["dag_id"]})[b["dag_id"]])


@router.get("", summary="List Backfills")
def list_backfills(
    dag_id: str,
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    order_by_: Annotated[OrderBy, Query(alias="order_by")] = None,
) -> BackfillCollectionResponse:
    ((_, desc),) = order_by(order_by_, ("id",), "id")
    q = backfills_q.query(dag_id=dag_id).order_by(None)
    q = q.order_by(backfill_table.c.id.desc() if desc else backfill_table.c.id.asc())
    with store.read() as conn:
        rows, total = paging.page(conn, q, page.limit, page.offset)
    names = _display_names(store, {dag_id})
    return BackfillCollectionResponse(
        backfills=[backfill_response(b, names[dag_id]) for b in rows], total_entries=total
    )


@router.get("/{backfill_id}", summary="Get Backfill")
def get_backfill(backfill_id: BackfillId, store: StoreDep, who: ReadUser) -> BackfillResponse:
    return _one(store, backfill_id)


def _act(store: Store, backfill_id: int, action: str, request: Request) -> BackfillResponse:
    """Airflow's pause / unpause / cancel: 404 for an unknown backfill, 409 for a finished one."""
    _one(store, backfill_id)
    try:
        control.set_backfill_state(store, backfill_id, action)
    except ConflictError:
        raise HTTPException(409, "Backfill is already completed.") from None
    changed(request)
    return _one(store, backfill_id)


@router.put("/{backfill_id}/pause", summary="Pause Backfill")
def pause_backfill(
    backfill_id: BackfillId, store: StoreDep, who: EditUser, request: Request
) -> BackfillResponse:
    return _act(store, backfill_id, "pause", request)


@router.put("/{backfill_id}/unpause", summary="Unpause Backfill")
def unpause_backfill(
    backfill_id: BackfillId, store: StoreDep, who: EditUser, request: Request
) -> BackfillResponse:
    return _act(store, backfill_id, "resume", request)


@router.put("/{backfill_id}/cancel", summary="Cancel Backfill")
def cancel_backfill(
    backfill_id: BackfillId, store: StoreDep, who: EditUser, request: Request
) -> BackfillResponse:
    """Start no more runs; runs not started yet end failed, started ones finish."""
    return _act(store, backfill_id, "cancel", request)


def _check(store: Store, body: BackfillPostBody, *, creating: bool) -> None:
    """What Airflow checks before planning, with its words: the DAG, one unfinished backfill
    per DAG, the date range."""
    with store.read() as conn:
        try:
            dags_q.get_dag(conn, body.dag_id)
        except NotFoundError:
            not_found(f"Could not find dag {body.dag_id}")
        busy = [b for b in backfills_q.list_all(conn, body.dag_id) if b["state"] not in DONE]
    if creating and busy:
        raise HTTPException(409, f"There is already a running backfill for dag {body.dag_id}")
    if body.from_date > body.to_date:
        raise HTTPException(
            422,
            f"from_date ({body.from_date.isoformat()}) must not be after to_date ({body.to_date.isoformat()}).",
        )
    if body.from_date >= datetime.now(UTC):
        raise HTTPException(422, "Backfill cannot be executed for future dates.")
    if body.run_on_latest_version and body.reprocess_behavior != "none":
        raise HTTPException(
            400,
            "run_on_latest_version=true is not supported with reprocess_behavior "
            f"{body.reprocess_behavior!r}: Millstream reruns an existing run on the DAG version it ran with",
        )


def _create(store: Store, body: BackfillPostBody, dry_run: bool) -> tuple[int | None, list[Any]]:
    try:
        return create_from_body(store, body, body.dag_run_conf, dry_run)
    except NotFoundError:
        not_found(f"Could not find dag {body.dag_id}")
    except ParamValidationError as e:  # Airflow: a RequestValidationError with its message
        raise HTTPException(422, for_http(str(e))) from None
    except (OverflowError, ValueError) as e:  # dates the schedule cannot place
        raise HTTPException(422, f"from_date/to_date: {e}") from None


@router.post("", summary="Create Backfill")
def create_backfill(
    backfill_request: BackfillPostBody, store: StoreDep, who: EditUser, request: Request
) -> BackfillResponse:
    """Runs over every interval of the range; existing runs follow ``reprocess_behavior``.
    A running scheduler works through them, ``max_active_runs`` at a time."""
    _check(store, backfill_request, creating=True)
    backfill_id, _ = _create(store, backfill_request, dry_run=False)
    assert backfill_id is not None
    changed(request)
    return _one(store, backfill_id)


@router.post("/dry_run", summary="Create Backfill Dry Run")
def create_backfill_dry_run(
    body: BackfillPostBody, store: StoreDep, who: EditUser
) -> DryRunBackfillCollectionResponse:
    """The logical dates a backfill would run (create or rerun), in the order it would run them."""
    _check(store, body, creating=False)
    _, items = _create(store, body, dry_run=True)
    dates = [i.logical_date for i in items if i.action != "skip"]
    if body.run_backwards:
        dates.reverse()
    return DryRunBackfillCollectionResponse(
        backfills=[DryRunBackfillResponse(logical_date=d) for d in dates], total_entries=len(dates)
    )
