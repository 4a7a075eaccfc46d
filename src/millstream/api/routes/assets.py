"""Assets: list with producers and consumers, aliases, events, and events from outside."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from millstream import control
from millstream.api.auth import Admin, User
from millstream.api.deps import PagingDep, StoreDep, changed
from millstream.api.query import STRICT
from millstream.api.schemas import AliasOut, AssetEventOut, AssetOut, EmitBody, Emitted, EventSource, Page
from millstream.store import assets as assets_q
from millstream.store import dags as dags_q
from millstream.store import paging

router = APIRouter(tags=["Assets"], dependencies=STRICT)


def _empty() -> dict[str, list[str]]:
    return {"producers": [], "consumers": [], "readers": []}


@router.get("/assets", response_model=Page[AssetOut], summary="List assets")
def list_assets(
    store: StoreDep,
    who: User,
    page: PagingDep,
    name_pattern: Annotated[
        str | None, Query(max_length=1500, description="Part of the name or URI.")
    ] = None,
    group: Annotated[str | None, Query(max_length=250)] = None,
) -> Page[AssetOut]:
    with store.read() as conn:
        rows = assets_q.list_assets(conn)
        refs = assets_q.refs_by_key(conn)
    if name_pattern:
        rows = [r for r in rows if name_pattern in r["name"] or name_pattern in r["uri"]]
    if group:
        rows = [r for r in rows if r["asset_group"] == group]
    items = [
        AssetOut(
            name=r["name"],
            uri=r["uri"],
            group=r["asset_group"],
            events=r["events"],
            last_event=r["last_event"],
            **refs.get(f"asset:{r['name']}", _empty()),
        )
        for r in page.window(rows)
    ]
    return page.of(items, len(rows))


@router.get("/assets/aliases", response_model=Page[AliasOut], summary="List asset aliases")
def list_aliases(store: StoreDep, who: User, page: PagingDep) -> Page[AliasOut]:
    with store.read() as conn:
        rows = assets_q.list_aliases(conn)
        refs = assets_q.refs_by_key(conn)
    items = []
    for a in page.window(rows):
        ref = refs.get(f"alias:{a['name']}", _empty())
        items.append(
            AliasOut(
                name=a["name"],
                assets=list(a["assets"]),
                producers=ref["producers"],
                consumers=ref["consumers"],
            )
        )
    return page.of(items, len(rows))


def _event(r: Any) -> AssetEventOut:
    return AssetEventOut.model_validate({**r, "extra": dict(r["extra"] or {})})


@router.get("/assets/events", response_model=Page[AssetEventOut], summary="Asset events, newest first")
def list_events(
    store: StoreDep,
    who: User,
    page: PagingDep,
    asset: Annotated[str | None, Query(max_length=1500, description="Only this asset (name or URI).")] = None,
    source: Annotated[EventSource | None, Query(description="What recorded the event.")] = None,
    source_dag_id: Annotated[
        str | None, Query(max_length=250, description="Only events of this DAG's tasks.")
    ] = None,
) -> Page[AssetEventOut]:
    with store.read() as conn:
        if source_dag_id is not None:
            dags_q.get_dag(conn, source_dag_id)  # 404: a typo is not an empty list
        q = assets_q.events_query(
            asset_id=assets_q.get_asset(conn, asset)["id"] if asset else None,
            source=source,
            source_dag_id=source_dag_id,
        )
        rows, total = paging.page(conn, q, page.limit, page.offset)
    return page.of([_event(r) for r in rows], total)


@router.post("/assets/events", response_model=Emitted, status_code=201, summary="Emit an event from outside")
def emit(body: EmitBody, store: StoreDep, who: Admin, request: Request) -> Emitted:
    """DAGs scheduled on the asset run as if a task had updated it (``millstream assets emit``)."""
    event_id = control.emit_asset_event(store, body.asset, extra=body.extra)
    changed(request)
    with store.read() as conn:
        name = assets_q.get_asset(conn, body.asset)["name"]
    return Emitted(event_id=event_id, asset=name)
