"""Airflow 3.3's asset endpoints (``routes/public/assets.py``) over Millstream's assets.

Millstream's ``asset`` rows have integer ids, as Airflow's do, so ids map one to one. What
differs, and how it is answered honestly:

- a DAG's references to an asset (schedule, outlets, inlets) are rebuilt whenever the DAG is
  parsed, so their ``created_at``/``updated_at`` are both that DAG's last parse;
- an asset is *active* (``only_active``) while some DAG's current definition mentions it;
- aliases keep no group: every alias answers Airflow's default group ``"asset"``;
- asset watchers run inside the scheduler without trigger rows, so ``watchers`` is ``[]``;
- events from outside have no map index: ``source_map_index`` is Airflow's ``-1``;
- Airflow's queue holds one row per (consumer, asset); Millstream queues each event, so a
  queued event here is that group, ``created_at`` the oldest one's;
- partitions and multi-team access control do not exist yet: asking for them is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from millstream import control
from millstream.api.deps import StoreDep, changed
from millstream.api.v2.assets_models import (
    AssetAliasCollectionResponse,
    AssetAliasResponse,
    AssetCollectionResponse,
    AssetEventCollectionResponse,
    AssetEventResponse,
    AssetResponse,
    CreateAssetEventsBody,
    MaterializeAssetBody,
    QueuedEventCollectionResponse,
    QueuedEventResponse,
    event_responses,
)
from millstream.api.v2.common import (
    EditUser,
    OrderBy,
    PagingDep,
    ReadUser,
    not_found,
    order_by,
    sort_rows,
    split_terms,
)
from millstream.api.v2.dag_runs import trigger_dag_run
from millstream.api.v2.dag_runs_models import DAGRunResponse
from millstream.core.assets import asset_key
from millstream.store import Store, asset_queries, paging
from millstream.store import assets as assets_q
from millstream.store import dags as dags_q

router = APIRouter(tags=["Asset"])

#: Airflow's default group, which Millstream's aliases do not record.
ALIAS_GROUP = "asset"

Pattern = Annotated[str | None, Query(description="SQL LIKE pattern (`%`, `_`); `|` separates alternatives.")]
Prefix = Annotated[str | None, Query(description="Prefix, case-sensitive; `|` separates alternatives.")]
Before = Annotated[str | None, Query(description="Only events queued before this time (ISO 8601).")]


# -- Airflow's search parameters -----------------------------------------------------------------


def like_patterns(value: str | None) -> list[str]:
    """``name_pattern`` as SQL ILIKE patterns (``~`` means everything)."""
    if value is None:
        return []
    return [f"%{t}%" for t in split_terms("%" if value == "~" else value)]


def prefixes(value: str | None) -> list[str]:
    if value is None:
        return []
    return split_terms("" if value == "~" else value)


def _like_regex(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def matches(text: str, likes: Sequence[str], starts: Sequence[str]) -> bool:
    """Python's reading of ``like_patterns``/``prefixes`` (for lists filtered in memory)."""
    if likes and not any(_like_regex(p).fullmatch(text) for p in likes):
        return False
    return not starts or any(text.startswith(p) for p in starts)


def parse_before(value: str | None) -> datetime | None:
    """Airflow's ``before``: an ISO 8601 time (naive means UTC), else its 400."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(
            400, f"Invalid datetime: {value!r}. Please check the date parameter have this value."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _with_pk(keys: list[tuple[str, bool]], pk: str = "id") -> list[tuple[str, bool]]:
    """Airflow breaks ties by the primary key, in the first key's direction."""
    return keys if any(k == pk for k, _ in keys) else [*keys, (pk, keys[0][1])]


# -- assets --------------------------------------------------------------------------------------


def _asset_rows(store: Store) -> list[dict[str, Any]]:
    """Every asset as Airflow's ``AssetResponse`` fields, plus ``active`` and ``dag_ids``
    (the DAGs referring to it), for filtering."""
    with store.read() as conn:
        rows = assets_q.list_assets(conn)
        refs = assets_q.refs(conn)
        parsed = {d["dag_id"]: d["last_parsed_at"] for d in dags_q.list_dags(conn, active_only=False)}
        aliases = asset_queries.aliases_by_asset(conn)
        last = asset_queries.last_events(conn)
    by_key: dict[str, list[Any]] = {}
    for r in refs:
        by_key.setdefault(r["key"], []).append(r)
    out = []
    for a in rows:
        mine = by_key.get(asset_key(a["name"]), [])

        def ref(r: Any, a: Mapping[str, Any] = a) -> dict[str, Any]:
            when = parsed.get(r["dag_id"]) or a["updated_at"]
            return {"dag_id": r["dag_id"], "task_id": r["task_id"], "created_at": when, "updated_at": when}

        event = last.get(a["id"])
        out.append(
            {
                "id": a["id"],
                "name": a["name"],
                "uri": a["uri"],
                "group": a["asset_group"],
                "extra": dict(a["extra"] or {}),
                "created_at": a["created_at"],
                "updated_at": a["updated_at"],
                "scheduled_dags": [ref(r) for r in mine if r["kind"] == "schedule"],
                "producing_tasks": [ref(r) for r in mine if r["kind"] == "outlet"],
                "consuming_tasks": [ref(r) for r in mine if r["kind"] == "inlet"],
                "aliases": [{**x, "group": ALIAS_GROUP} for x in aliases.get(a["id"], [])],
                "watchers": [],
                "last_asset_event": {"id": event[0], "timestamp": event[1]} if event else {},
                "active": bool(mine),
                "dag_ids": {r["dag_id"] for r in mine},
            }
        )
    return out


@router.get("/assets", summary="Get Assets")
def get_assets(
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    name_pattern: Pattern = None,
    name_prefix_pattern: Prefix = None,
    uri_pattern: Pattern = None,
    uri_prefix_pattern: Prefix = None,
    dag_ids: Annotated[list[str] | None, Query()] = None,
    only_active: bool = True,
    order_by_: Annotated[OrderBy, Query(alias="order_by")] = None,
) -> AssetCollectionResponse:
    keys = _with_pk(order_by(order_by_, ("id", "name", "uri", "created_at", "updated_at"), "id"))
    if dag_ids and len(dag_ids) == 1 and "," in dag_ids[0]:
        dag_ids = dag_ids[0].split(",")
    names = (like_patterns(name_pattern), prefixes(name_prefix_pattern))
    uris = (like_patterns(uri_pattern), prefixes(uri_prefix_pattern))
    rows = [
        r
        for r in _asset_rows(store)
        if (r["active"] or not only_active)
        and matches(r["name"], *names)
        and matches(r["uri"], *uris)
        and (dag_ids is None or r["dag_ids"] & set(dag_ids))
    ]
    ordered = sort_rows(rows, keys)
    return AssetCollectionResponse(
        assets=[AssetResponse.model_validate(r) for r in page.window(ordered)], total_entries=len(ordered)
    )


@router.get("/assets/aliases", summary="Get Asset Aliases")
def get_asset_aliases(
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    name_pattern: Pattern = None,
    name_prefix_pattern: Prefix = None,
    order_by_: Annotated[OrderBy, Query(alias="order_by")] = None,
) -> AssetAliasCollectionResponse:
    keys = _with_pk(order_by(order_by_, ("id", "name"), "id"))
    with store.read() as conn:
        rows = [{**r, "group": ALIAS_GROUP} for r in asset_queries.alias_rows(conn)]
    rows = [r for r in rows if matches(r["name"], like_patterns(name_pattern), prefixes(name_prefix_pattern))]
    ordered = sort_rows(rows, keys)
    return AssetAliasCollectionResponse(
        asset_aliases=[AssetAliasResponse.model_validate(r) for r in page.window(ordered)],
        total_entries=len(ordered),
    )


@router.get("/assets/aliases/{asset_alias_id}", summary="Get Asset Alias")
def get_asset_alias(asset_alias_id: int, store: StoreDep, who: ReadUser) -> AssetAliasResponse:
    with store.read() as conn:
        row = next((r for r in asset_queries.alias_rows(conn) if r["id"] == asset_alias_id), None)
    if row is None:
        not_found(f"The Asset Alias with ID: `{asset_alias_id}` was not found")
    return AssetAliasResponse(id=row["id"], name=row["name"], group=ALIAS_GROUP)


# -- events --------------------------------------------------------------------------------------


def _events(store: Store, rows: Sequence[Any]) -> list[AssetEventResponse]:
    with store.read() as conn:
        runs = asset_queries.runs_of_events(conn, [r["id"] for r in rows])
    return event_responses(rows, runs)


@router.get("/assets/events", summary="Get Asset Events")
def get_asset_events(
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    order_by_: Annotated[OrderBy, Query(alias="order_by")] = None,
    asset_id: int | None = None,
    source_dag_id: str | None = None,
    source_task_id: str | None = None,
    source_run_id: str | None = None,
    source_map_index: int | None = None,
    name_pattern: Pattern = None,
    name_prefix_pattern: Prefix = None,
    timestamp_gte: datetime | None = None,
    timestamp_gt: datetime | None = None,
    timestamp_lte: datetime | None = None,
    timestamp_lt: datetime | None = None,
) -> AssetEventCollectionResponse:
    keys = order_by(order_by_, asset_queries.EVENT_ORDER, "timestamp")
    bounds = {"gte": timestamp_gte, "gt": timestamp_gt, "lte": timestamp_lte, "lt": timestamp_lt}
    q = asset_queries.events_filtered(
        asset_id=asset_id,
        source_dag_id=source_dag_id,
        source_task_id=source_task_id,
        source_run_id=source_run_id,
        source_map_index=source_map_index,
        name_like=like_patterns(name_pattern),
        name_prefix=prefixes(name_prefix_pattern),
        timestamp={k: v if v is None or v.tzinfo else v.replace(tzinfo=UTC) for k, v in bounds.items()},
        order=keys,
    )
    with store.read() as conn:
        rows, total = paging.page(conn, q, page.limit, page.offset)
    return AssetEventCollectionResponse(asset_events=_events(store, rows), total_entries=total)


@router.post("/assets/events", summary="Create Asset Event")
def create_asset_event(
    body: CreateAssetEventsBody, store: StoreDep, who: EditUser, request: Request
) -> AssetEventResponse:
    """Record an event from outside: the DAGs scheduled on the asset run as if a task had
    updated it (``control.emit_asset_event``, as ``POST /api/v1/assets/events``)."""
    with store.read() as conn:
        row = asset_queries.asset_by_id(conn, body.asset_id)
    if row is None:
        not_found(f"Asset with ID: `{body.asset_id}` was not found")
    if body.partition_key is not None:
        raise HTTPException(400, "partition_key is not supported: Millstream has no asset partitions yet")
    if body.access_control is not None:
        raise HTTPException(
            400, "access_control is not supported: Millstream has no multi-team mode, every DAG may consume"
        )
    extra = {**body.extra, "from_rest_api": True}  # as Airflow marks events made through its API
    event_id = control.emit_asset_event(store, row["name"], extra=extra)
    changed(request)
    with store.read() as conn:
        event = conn.execute(asset_queries.events_filtered(event_id=event_id)).mappings().one()
    return _events(store, [event])[0]


# -- materialize -----------------------------------------------------------------------------------


@router.post("/assets/{asset_id}/materialize", summary="Materialize Asset")
def materialize_asset(
    asset_id: int,
    store: StoreDep,
    who: EditUser,
    request: Request,
    body: MaterializeAssetBody | None = None,
) -> DAGRunResponse:
    """Trigger the one DAG whose tasks produce the asset, exactly as ``POST
    /dags/{dag_id}/dagRuns`` does (same checks, same refusals, ``control.trigger``); without a
    ``logical_date`` the run has none, as Airflow's materialization. Millstream records it as
    a manual run: it has no run type of its own for materializations."""
    body = body or MaterializeAssetBody()
    with store.read() as conn:
        row = asset_queries.asset_by_id(conn, asset_id)
        key = asset_key(row["name"]) if row is not None else None
        producers = sorted(
            {r["dag_id"] for r in assets_q.refs(conn) if r["kind"] == "outlet" and r["key"] == key}
        )
    if not producers:
        not_found(f"No Dag materializes asset with ID: {asset_id}")
    if len(producers) > 1:
        raise HTTPException(409, f"More than one Dag materializes asset with ID: {asset_id}")
    return trigger_dag_run(producers[0], body, store, who, request)


# -- queued events ---------------------------------------------------------------------------------


def _queued(rows: Sequence[Mapping[str, Any]]) -> QueuedEventCollectionResponse:
    items = [
        QueuedEventResponse(
            dag_id=r["dag_id"],
            asset_id=r["asset_id"],
            created_at=r["created_at"],
            dag_display_name=r["display_name"] or r["dag_id"],
        )
        for r in rows
    ]
    return QueuedEventCollectionResponse(queued_events=items, total_entries=len(items))


def _read_queue(store: Store, **where: Any) -> list[Any]:
    with store.read() as conn:
        return asset_queries.queued_by_asset(conn, **where)


def _drop_queue(store: Store, **where: Any) -> int:
    with store.begin() as conn:
        return asset_queries.drop_queued(conn, **where)


@router.get("/assets/{asset_id}/queuedEvents", summary="Get Asset Queued Events")
def get_asset_queued_events(
    asset_id: int, store: StoreDep, who: ReadUser, before: Before = None
) -> QueuedEventCollectionResponse:
    """Consumers still waiting on this asset's events (an empty list if none, as Airflow)."""
    return _queued(_read_queue(store, asset_id=asset_id, before=parse_before(before)))


@router.delete("/assets/{asset_id}/queuedEvents", status_code=204, summary="Delete Asset Queued Events")
def delete_asset_queued_events(
    asset_id: int, store: StoreDep, who: EditUser, before: Before = None
) -> Response:
    """Forget the asset's pending events: no consumer runs for them."""
    if not _drop_queue(store, asset_id=asset_id, before=parse_before(before)):
        not_found(f"Queue event with asset_id: `{asset_id}` was not found")
    return Response(status_code=204)


@router.get("/assets/{asset_id}", summary="Get Asset")
def get_asset(asset_id: int, store: StoreDep, who: ReadUser) -> AssetResponse:
    row = next((r for r in _asset_rows(store) if r["id"] == asset_id), None)
    if row is None:
        not_found(f"The Asset with ID: `{asset_id}` was not found")
    return AssetResponse.model_validate(row)


@router.get("/dags/{dag_id}/assets/queuedEvents", summary="Get Dag Asset Queued Events")
def get_dag_asset_queued_events(
    dag_id: str, store: StoreDep, who: ReadUser, before: Before = None
) -> QueuedEventCollectionResponse:
    return _queued(_read_queue(store, dag_id=dag_id, before=parse_before(before)))


@router.delete(
    "/dags/{dag_id}/assets/queuedEvents", status_code=204, summary="Delete Dag Asset Queued Events"
)
def delete_dag_asset_queued_events(
    dag_id: str, store: StoreDep, who: EditUser, before: Before = None
) -> Response:
    if not _drop_queue(store, dag_id=dag_id, before=parse_before(before)):
        not_found(f"Queue event with dag_id: `{dag_id}` was not found")
    return Response(status_code=204)


@router.get("/dags/{dag_id}/assets/{asset_id}/queuedEvents", summary="Get Dag Asset Queued Event")
def get_dag_asset_queued_event(
    dag_id: str, asset_id: int, store: StoreDep, who: ReadUser, before: Before = None
) -> QueuedEventResponse:
    rows = _read_queue(store, dag_id=dag_id, asset_id=asset_id, before=parse_before(before))
    if not rows:
        not_found(f"Queued event with dag_id: `{dag_id}` and asset_id: `{asset_id}` was not found")
    return _queued(rows).queued_events[0]


@router.delete(
    "/dags/{dag_id}/assets/{asset_id}/queuedEvents", status_code=204, summary="Delete Dag Asset Queued Event"
)
def delete_dag_asset_queued_event(
    dag_id: str, asset_id: int, store: StoreDep, who: EditUser, before: Before = None
) -> Response:
    if not _drop_queue(store, dag_id=dag_id, asset_id=asset_id, before=parse_before(before)):
        not_found(f"Queued event with dag_id: `{dag_id}` and asset_id: `{asset_id}` was not found")
    return Response(status_code=204)
