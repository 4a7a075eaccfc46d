"""Airflow 3.3's ``/api/v2/pools``: list, read, create, patch, delete and the bulk
``PATCH``, over the store's pool functions that ``/api/v1/pools`` uses
(:mod:`millstream.store.pools`).

The slot counts are Airflow's: ``running``, ``queued``, ``scheduled`` and ``deferred``
instances of the pool, ``occupied`` = running + queued, ``open`` = slots - occupied.
Millstream counts one slot per instance (a task's ``pool_slots`` lives in its DAG's spec,
not in the store), as ``/api/v1/pools`` does. Two things Airflow pools can be that
Millstream's cannot, refused with a 400 that says so: unlimited (``slots: -1``), and
``include_deferred: true`` (a deferred task never holds a slot here).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Connection as DbConnection

from millstream.api.deps import StoreDep, changed
from millstream.api.v2.common import EditUser, OrderBy, PagingDep, ReadUser, sort_rows
from millstream.api.v2.common import order_by as parse_order
from millstream.api.v2.secrets_models import (
    BasePool,
    BulkActionOnExistence,
    BulkActionResponse,
    BulkBody,
    BulkCreateAction,
    BulkDeleteAction,
    BulkResponse,
    BulkUpdateAction,
    NamePattern,
    NamePrefix,
    PoolBody,
    PoolCollectionResponse,
    PoolPatchBody,
    PoolResponse,
    entity_ids,
    fail_if_existing,
    fail_if_missing,
    pattern_filter,
    refusal,
    renamed,
    run_bulk,
    with_tiebreak,
)
from millstream.core.states import TaskState
from millstream.store import pools as pools_q
from millstream.store.tables import DEFAULT_POOL

router = APIRouter(tags=["Pool"], prefix="/pools")

#: How Airflow's bulk messages name them.
POOL_NAMES = "pools with these pool names"
SORTABLE = ("id", "pool")
COUNTED = tuple(
    s.value for s in (TaskState.RUNNING, TaskState.QUEUED, TaskState.SCHEDULED, TaskState.DEFERRED)
)
MAX_NAME = 250  # the store's column; Airflow allows 256


def _missing(name: str) -> HTTPException:
    return HTTPException(404, f"The Pool with name: `{name}` was not found")


def _pools(conn: DbConnection) -> dict[str, PoolResponse]:
    counts = pools_q.state_counts(conn, COUNTED)
    out = {}
    for r in pools_q.list_pools(conn):
        name, slots = str(r["name"]), int(r["slots"])  # type: ignore[call-overload]
        n = counts.get(name, {})
        running, queued = n.get("running", 0), n.get("queued", 0)
        out[name] = PoolResponse(
            name=name,
            slots=slots,
            description=str(r["description"] or "") or None,
            include_deferred=False,
            occupied_slots=running + queued,
            running_slots=running,
            queued_slots=queued,
            scheduled_slots=n.get("scheduled", 0),
            open_slots=slots - running - queued,
            deferred_slots=n.get("deferred", 0),
            team_name=None,
        )
    return out


def _check(name: str | None, slots: int | None, include_deferred: bool | None) -> None:
    """Refuse what a Millstream pool cannot be, before anything is written."""
    if name is not None and not (0 < len(name) <= MAX_NAME and name.strip()):
        raise refusal(f"Millstream cannot store the pool name `{name}`: a name is 1 to {MAX_NAME} characters")
    if slots == -1:
        raise refusal("Millstream pools cannot be unlimited (slots -1): give the number of slots")
    if include_deferred:
        raise refusal(
            "Millstream cannot count deferred tasks in a pool (include_deferred): a deferred task never "
            "holds a pool slot here"
        )


def _write(conn: DbConnection, name: str, values: dict[str, Any], old: PoolResponse | None) -> None:
    """Set the given fields (``slots``, ``description``; a null description is none)."""
    slots = values.get("slots", old.slots if old else 0)
    description = values.get("description", old.description if old else None)
    _check(None, slots, values.get("include_deferred"))
    pools_q.set_pool(conn, name, slots, description or "")


def _patch(
    conn: DbConnection, old: PoolResponse, body: PoolBody | PoolPatchBody, mask: list[str] | None
) -> None:
    """Airflow's pool ``update_orm_from_pydantic``: ``default_pool`` takes only ``slots``
    and ``include_deferred``, named in the mask; another pool is checked whole as Airflow
    checks it (a 422 names what is missing), then the fields the body sets (and the mask
    names) are applied."""
    if old.name == DEFAULT_POOL:
        if not (mask and all(m.strip() in {"slots", "include_deferred"} for m in mask)):
            raise HTTPException(400, "Only slots and included_deferred can be modified on Default Pool")
        subset = body.model_dump(include={"slots", "include_deferred"}, exclude_unset=True, by_alias=True)
        try:
            PoolPatchBody.model_validate(subset)
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from None
    else:
        given = body.model_dump(include=body.model_fields_set, by_alias=True)
        if "name" in given and "pool" not in given:
            given["pool"] = given.pop("name")
        try:
            BasePool.model_validate(given)
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from None
    fields = set(body.model_fields_set)
    if mask:
        fields &= set(mask)
    values = {f: getattr(body, f) for f in fields & {"slots", "description", "include_deferred"}}
    _write(conn, old.name, values, old)


@router.get("", summary="Get Pools")
def get_pools(
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    order_by: OrderBy = None,
    pool_name_pattern: NamePattern = None,
    pool_name_prefix_pattern: NamePrefix = None,
) -> PoolCollectionResponse:
    """Pools with their slots in use; ``id`` orders by name (Millstream has no numeric ids)."""
    keys = parse_order(renamed(order_by, {"name": "pool"}), SORTABLE, "id")
    keep = pattern_filter(pool_name_pattern, pool_name_prefix_pattern)
    with store.read() as conn:
        found = [p for p in _pools(conn).values() if keep(p.name)]
    rows = sort_rows([{"id": p.name, "pool": p.name, "p": p} for p in found], with_tiebreak(keys, "pool"))
    return PoolCollectionResponse(pools=[r["p"] for r in page.window(rows)], total_entries=len(rows))


@router.get("/{pool_name:path}", summary="Get Pool")
def get_pool(pool_name: str, store: StoreDep, who: ReadUser) -> PoolResponse:
    with store.read() as conn:
        p = _pools(conn).get(pool_name)
    if p is None:
        raise _missing(pool_name)
    return p


@router.post("", status_code=201, summary="Post Pool")
def post_pool(body: PoolBody, store: StoreDep, who: EditUser, request: Request) -> PoolResponse:
    _check(body.pool, body.slots, body.include_deferred)
    with store.begin() as conn:
        if body.pool in _pools(conn):
            # Airflow answers a duplicate with its unique-constraint handler's body.
            raise HTTPException(
                409,
                {
                    "reason": "Unique constraint violation",
                    "statement": "hidden",
                    "orig_error": "hidden",
                    "message": f"The Pool with name: `{body.pool}` already exists",
                },
            )
        pools_q.set_pool(conn, body.pool, body.slots, body.description or "")
        answer = _pools(conn)[body.pool]
    changed(request)
    return answer


@router.patch("", summary="Bulk Pools")
def bulk_pools(body: BulkBody[PoolBody], store: StoreDep, who: EditUser, request: Request) -> BulkResponse:
    """Create, update and delete pools in one transaction, as Airflow's ``BulkPoolService``
    does; ``default_pool`` cannot be deleted here either."""
    with store.begin() as conn:

        def create(action: BulkCreateAction[PoolBody], res: BulkActionResponse) -> None:
            have = _pools(conn)
            matched = {e.pool for e in action.entities} & set(have)
            fail_if_existing(action, matched, POOL_NAMES)
            for e in action.entities:
                _check(e.pool, e.slots, e.include_deferred)
            skip = action.action_on_existence == BulkActionOnExistence.SKIP
            for e in action.entities:
                if skip and e.pool in matched:
                    continue
                old = have.get(e.pool)
                sent = e.model_fields_set if old is not None else {"slots", "description"}
                _write(conn, e.pool, {f: getattr(e, f) for f in sent & {"slots", "description"}}, old)
                have = _pools(conn)
                res.success.append(e.pool)

        def update(action: BulkUpdateAction[PoolBody], res: BulkActionResponse) -> None:
            have = _pools(conn)
            fail_if_missing(action, {e.pool for e in action.entities} - set(have), POOL_NAMES)
            for e in action.entities:
                if e.pool in have:
                    _patch(conn, have[e.pool], e, action.update_mask)
                    res.success.append(e.pool)

        def delete(action: BulkDeleteAction[PoolBody], res: BulkActionResponse) -> None:
            names = entity_ids(action.entities, "pool")
            have = _pools(conn)
            fail_if_missing(action, set(names) - set(have), POOL_NAMES)
            if DEFAULT_POOL in names:
                raise HTTPException(400, "Default Pool can't be deleted")
            for name in names:
                if name in have:
                    pools_q.delete_pool(conn, name)
                    res.success.append(name)

        answer = run_bulk(body, create, update, delete)
    changed(request)
    return answer


@router.patch("/{pool_name:path}", summary="Patch Pool")
def patch_pool(
    pool_name: str,
    body: PoolPatchBody,
    store: StoreDep,
    who: EditUser,
    request: Request,
    update_mask: Annotated[list[str] | None, Query()] = None,
) -> PoolResponse:
    if body.name and body.name != pool_name:
        raise HTTPException(400, "Invalid body, pool name from request body doesn't match uri parameter")
    with store.begin() as conn:
        old = _pools(conn).get(pool_name)
        if old is None:
            raise _missing(pool_name)
        _patch(conn, old, body, update_mask)
        answer = _pools(conn)[pool_name]
    changed(request)
    return answer


@router.delete("/{pool_name:path}", status_code=204, summary="Delete Pool")
def delete_pool(pool_name: str, store: StoreDep, who: EditUser) -> Response:
    if pool_name == DEFAULT_POOL:
        raise HTTPException(400, "Default Pool can't be deleted")
    with store.begin() as conn:
        if pool_name not in _pools(conn):
            raise _missing(pool_name)
        pools_q.delete_pool(conn, pool_name)
    return Response(status_code=204)
