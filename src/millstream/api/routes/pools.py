"""Pools: named numbers of slots shared by every DAG."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from millstream.api.auth import Admin, User
from millstream.api.deps import PagingDep, StoreDep, changed
from millstream.api.query import STRICT
from millstream.api.schemas import Page, PoolBody, PoolOut
from millstream.store import pools as pools_q

router = APIRouter(tags=["Pools"], dependencies=STRICT)

PoolName = Annotated[str, Path(min_length=1, max_length=250, pattern=r"^[^\x00]+$")]


@router.get("/pools", response_model=Page[PoolOut], summary="List pools with the slots in use")
def list_pools(
    store: StoreDep,
    who: User,
    page: PagingDep,
    name_pattern: Annotated[str | None, Query(max_length=250, description="Part of the name.")] = None,
) -> Page[PoolOut]:
    with store.read() as conn:
        rows = pools_q.list_pools(conn)
    if name_pattern:
        rows = [r for r in rows if name_pattern in str(r["name"])]
    items = [PoolOut(**r) for r in page.window(rows)]  # type: ignore[arg-type]
    return page.of(items, len(rows))


@router.put("/pools/{name}", response_model=PoolOut, summary="Create or change a pool")
def put_pool(name: PoolName, body: PoolBody, store: StoreDep, who: Admin, request: Request) -> PoolOut:
    with store.begin() as conn:
        pools_q.set_pool(conn, name, body.slots, body.description)
    changed(request)
    with store.read() as conn:
        row = next(r for r in pools_q.list_pools(conn) if r["name"] == name)
    return PoolOut(**row)  # type: ignore[arg-type]


@router.delete("/pools/{name}", status_code=204, summary="Delete a pool")
def delete_pool(name: PoolName, store: StoreDep, who: Admin) -> Response:
    with store.begin() as conn:
        pools_q.delete_pool(conn, name)
    return Response(status_code=204)
