"""Airflow 3.3's XCom endpoints over Millstream's task results.

Millstream keeps what a task returns under the key ``return_value`` and what it pushes
(``ti.xcom_push``) under its own key, as JSON, one row per task instance and key; the list
and the entries read them with SQL paging. Values are plain JSON, so ``deserialize`` changes
nothing (Airflow's stringify of a plain value is the value); ``stringify`` gives ``str()``
of it. ``timestamp`` is when the attempt that wrote the result ended (Millstream writes
results as an attempt ends and keeps no separate time). Entries may be created and changed
(as a push would); a later run of the task replaces them with what it writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from millstream.api.deps import StoreDep
from millstream.api.v2.common import EditUser, OrderBy, PagingDep, ReadUser, not_found, order_by
from millstream.api.v2.task_instances_models import (
    XComCollectionResponse,
    XComCreateBody,
    XComResponse,
    XComResponseNative,
    XComResponseString,
    XComUpdateBody,
)
from millstream.api.v2.task_instances_query import MAX_INT, utc
from millstream.errors import NotFoundError
from millstream.store import dags as dags_q
from millstream.store import paging
from millstream.store import results as results_q
from millstream.store import runs as runs_q

router = APIRouter(tags=["XCom"])
PREFIX = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries"
Str = Annotated[str | None, Query()]
When = Annotated[datetime | None, Query()]


def _display_names(conn: Any, rows: list[Mapping[str, Any]]) -> dict[tuple[int, str], str]:
    """(dag version, task id) -> the task's display name, one spec read per version."""
    out: dict[tuple[int, str], str] = {}
    for vid in {r["dag_version_id"] for r in rows}:
        spec = dags_q.spec_for_version(conn, vid)
        for t in spec.tasks:
            out[(vid, t.task_id)] = t.display_name or t.task_id
    return out


def _fields(row: Mapping[str, Any], names: Mapping[tuple[int, str], str]) -> dict[str, Any]:
    return {
        "key": row["key"],
        "timestamp": row["timestamp"],
        "logical_date": row["logical_date"],
        "map_index": row["map_index"],
        "task_id": row["task_id"],
        "dag_id": row["dag_id"],
        "run_id": row["run_id"],
        "dag_display_name": row["dag_display_name"] or row["dag_id"],
        "task_display_name": names.get((row["dag_version_id"], row["task_id"]), row["task_id"]),
        "run_after": row["run_after"],
    }


def _value(row: Any) -> Any:
    return json.loads(results_q.text_of(row))


def _stringified(value: Any) -> Any:
    """Airflow's XComResponseNative: what is not plain JSON becomes its ``str()``."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _stringified(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stringified(v) for v in value]
    return str(value)


@router.get(PREFIX, response_model=XComCollectionResponse)
def get_xcom_entries(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    xcom_key: Str = None,
    map_index: Annotated[int | None, Query(ge=-1, le=MAX_INT)] = None,
    xcom_key_pattern: Str = None,
    xcom_key_prefix_pattern: Str = None,
    dag_display_name_pattern: Str = None,
    dag_display_name_prefix_pattern: Str = None,
    run_id_pattern: Str = None,
    run_id_prefix_pattern: Str = None,
    task_id_pattern: Str = None,
    task_id_prefix_pattern: Str = None,
    map_index_filter: Annotated[int | None, Query(ge=-MAX_INT, le=MAX_INT)] = None,
    logical_date_gte: When = None,
    logical_date_gt: When = None,
    logical_date_lte: When = None,
    logical_date_lt: When = None,
    run_after_gte: When = None,
    run_after_gt: When = None,
    run_after_lte: When = None,
    run_after_lt: When = None,
    order_by: OrderBy = None,
) -> XComCollectionResponse:
    """Results of one task instance, or (``~`` for dag_id, dag_run_id or task_id) of many."""
    keys = _order(order_by)
    patterns = [
        (field, how, term)
        for field, how, term in (
            ("key", "contains", xcom_key_pattern),
            ("key", "prefix", xcom_key_prefix_pattern),
            ("dag_display_name", "contains", dag_display_name_pattern),
            ("dag_display_name", "prefix", dag_display_name_prefix_pattern),
            ("run_id", "contains", run_id_pattern),
            ("run_id", "prefix", run_id_prefix_pattern),
            ("task_id", "contains", task_id_pattern),
            ("task_id", "prefix", task_id_prefix_pattern),
        )
        if term is not None
    ]
    dates = {
        ("logical_date", "gte"): logical_date_gte,
        ("logical_date", "gt"): logical_date_gt,
        ("logical_date", "lte"): logical_date_lte,
        ("logical_date", "lt"): logical_date_lt,
        ("run_after", "gte"): run_after_gte,
        ("run_after", "gt"): run_after_gt,
        ("run_after", "lte"): run_after_lte,
        ("run_after", "lt"): run_after_lt,
    }
    q = results_q.api_query(
        dag_id=None if dag_id == "~" else dag_id,
        run_id=None if dag_run_id == "~" else dag_run_id,
        task_id=None if task_id == "~" else task_id,
        map_index=map_index if map_index is not None else map_index_filter,
        key=xcom_key,
        patterns=patterns,
        ranges=[(f, op, utc(v)) for (f, op), v in dates.items() if v is not None],
        order=keys,
    )
    if map_index is not None and map_index_filter is not None and map_index != map_index_filter:
        return XComCollectionResponse(xcom_entries=[], total_entries=0)
    with store.read() as conn:
        rows, total = paging.page(conn, q, page.limit, page.offset)
        names = _display_names(conn, rows)
    return XComCollectionResponse(
        xcom_entries=[XComResponse(**_fields(r, names)) for r in rows], total_entries=total
    )


def _order(values: list[str] | None) -> list[tuple[str, bool]]:
    if not values:
        return [(n, False) for n in ("dag_id", "task_id", "run_id", "map_index", "key")]
    return order_by(values, ("key", "dag_id", "run_id", "task_id", "map_index", "timestamp"), "dag_id")


def _one(conn: Any, dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
    q = results_q.api_query(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, key=key)
    return conn.execute(q.limit(1)).mappings().first()


@router.get(PREFIX + "/{xcom_key:path}", response_model=XComResponseNative | XComResponseString)
def get_xcom_entry(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    xcom_key: str,
    store: StoreDep,
    who: ReadUser,
    map_index: Annotated[int, Query(ge=-1, le=MAX_INT)] = -1,
    deserialize: bool = False,
    stringify: bool = False,
) -> XComResponseNative | XComResponseString:
    with store.read() as conn:
        row = _one(conn, dag_id, dag_run_id, task_id, map_index, xcom_key)
        if row is None:
            not_found(f"XCom entry with key: `{xcom_key}` not found")
        fields = _fields(row, _display_names(conn, [row]))
        value = _value(row)
    if stringify:
        return XComResponseString(**fields, value=None if value is None else str(value))
    return XComResponseNative(**fields, value=_stringified(value))


def _writable(conn: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> int:
    """The run's primary key, after Airflow's 404s; the task instance must exist."""
    try:
        dags_q.get_dag(conn, dag_id)
        spec = dags_q.latest_spec(conn, dag_id)[1]
    except NotFoundError:
        not_found(f"The Dag with ID: `{dag_id}` was not found")
    try:
        run = runs_q.get_run(conn, dag_id, run_id)
    except NotFoundError:
        run = None
    if run is not None:
        spec = dags_q.spec_for_version(conn, run["dag_version_id"])
    if not spec.has_task(task_id):
        not_found(f"Task with ID: `{task_id}` not found in dag: `{dag_id}`")
    if run is None:
        not_found(f"Dag Run with ID: `{run_id}` not found for dag: `{dag_id}`")
    from millstream.store import task_instances as ti_q

    if ti_q.find(conn, run["id"], task_id, map_index) is None:
        raise HTTPException(
            400,
            f"Task {task_id!r} has no map index {map_index} in run {run_id!r}: an XCom belongs to a task instance",
        )
    return int(run["id"])


def _check_value(value: Any, key: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise HTTPException(400, f"Couldn't serialise the XCom with key: `{key}`") from None


@router.post(PREFIX, response_model=XComResponseNative, status_code=201)
def create_xcom_entry(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    body: XComCreateBody,
    store: StoreDep,
    who: EditUser,
) -> XComResponseNative:
    with store.begin() as conn:
        run_pk = _writable(conn, dag_id, dag_run_id, task_id, body.map_index)
        if _one(conn, dag_id, dag_run_id, task_id, body.map_index, body.key) is not None:
            raise HTTPException(
                409, f"The XCom with key: `{body.key}` with mentioned task instance already exists."
            )
        _check_value(body.value, body.key)
        results_q.put_one(conn, run_pk, task_id, body.map_index, body.key, body.value)
    return _written(store, dag_id, dag_run_id, task_id, body.map_index, body.key)


@router.patch(PREFIX + "/{xcom_key:path}", response_model=XComResponseNative)
def update_xcom_entry(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    xcom_key: str,
    body: XComUpdateBody,
    store: StoreDep,
    who: EditUser,
) -> XComResponseNative:
    with store.begin() as conn:
        row = _one(conn, dag_id, dag_run_id, task_id, body.map_index, xcom_key)
        if row is None:
            not_found(f"The XCom with key: `{xcom_key}` with mentioned task instance doesn't exist.")
        _check_value(body.value, xcom_key)
        results_q.put_one(conn, row["run_pk"], task_id, body.map_index, xcom_key, body.value)
    return _written(store, dag_id, dag_run_id, task_id, body.map_index, xcom_key)


def _written(
    store: Any, dag_id: str, run_id: str, task_id: str, map_index: int, key: str
) -> XComResponseNative:
    with store.read() as conn:
        row = _one(conn, dag_id, run_id, task_id, map_index, key)
        return XComResponseNative(
            **_fields(row, _display_names(conn, [row])), value=_stringified(_value(row))
        )


@router.delete(PREFIX + "/{xcom_key:path}", status_code=204)
def delete_xcom_entry(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    xcom_key: str,
    store: StoreDep,
    who: EditUser,
    map_index: Annotated[int, Query(ge=-1, le=MAX_INT)] = -1,
) -> None:
    with store.begin() as conn:
        row = _one(conn, dag_id, dag_run_id, task_id, map_index, xcom_key)
        if row is None or not results_q.delete_one(conn, row["run_pk"], task_id, map_index, xcom_key):
            not_found(f"The XCom with key: `{xcom_key}` with mentioned task instance doesn't exist.")
