"""What the DAG run routes share: looking runs up with Airflow's answers, clearing one run,
and the query parameters and bodies of Airflow 3.3's run lists, read into one
:class:`RunQuery` that :func:`millstream.store.runs.filtered` turns into SQL: ranges,
``*_pattern`` (ILIKE, ``|`` for "or", ``~`` for all), ``*_prefix_pattern`` (a case-sensitive
range scan), multi-valued ``state`` / ``run_type``, ordering and cursors, with Airflow's
answers to a bad value."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Query
from pydantic import Field
from sqlalchemy import Connection

from millstream import control
from millstream.api.v2.common import order_by, split_terms
from millstream.api.v2.dag_runs_models import (
    BIGGEST,
    DAGRunResponse,
    DagRunState,
    DagRunType,
    ids_of,
    run_response,
)
from millstream.api.v2.task_instances_models import TaskInstanceResponse, ti_response
from millstream.errors import NotFoundError
from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q

Bounds = tuple[Any, Any, Any, Any]

#: What the run list orders by (``dag_run_id`` is ``run_id``); ``updated_at`` is refused.
LIST_ORDER = (*runs_q.AIRFLOW_ORDER_KEYS, "updated_at", "dag_run_id")
BATCH_ORDER = tuple(k for k in LIST_ORDER if k not in ("duration", "partition_date"))


def refuse(what: str, why: str) -> HTTPException:
    return HTTPException(400, f"{what} cannot be honoured: {why}")


NO_NOTES = "Millstream keeps no notes on DAG runs; send null or leave it out"
NO_UPDATED_AT = "Millstream does not record when a DAG run was last updated"


# -- lookups with Airflow's answers ---------------------------------------------------------


def run_not_found(dag_id: str, run_id: str) -> HTTPException:
    return HTTPException(404, f"The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found")


def get_run(conn: Connection, dag_id: str, run_id: str) -> Any:
    try:
        return runs_q.get_run(conn, dag_id, run_id)
    except NotFoundError:
        raise run_not_found(dag_id, run_id) from None


def get_dag(conn: Connection, dag_id: str) -> Any:
    try:
        return dags_q.get_dag(conn, dag_id)
    except NotFoundError:
        raise HTTPException(404, f"The Dag with ID: `{dag_id}` was not found") from None


def responses(conn: Connection, rows: list[Any]) -> list[DAGRunResponse]:
    dag_ids, version_ids = ids_of(rows)
    names = runs_q.display_names(conn, dag_ids)
    versions = runs_q.versions_of(conn, version_ids)
    return [run_response(r, names, versions) for r in rows]


def one_run(store: Store, dag_id: str, run_id: str) -> DAGRunResponse:
    with store.read() as conn:
        return responses(conn, [get_run(conn, dag_id, run_id)])[0]


def clear_one(
    store: Store,
    dag_id: str,
    run_id: str,
    *,
    dry_run: bool,
    only_failed: bool,
    only_new: bool,
    run_on_latest_version: bool | None,
    note: str | None,
) -> list[TaskInstanceResponse]:
    """Clear one run's finished task instances (``only_failed``: its failed ones) so that
    they run again, as :func:`control.clear` does (instances still queued or running are left
    alone); with ``dry_run``, the instances it would clear, changing nothing."""
    with store.read() as conn:
        run = get_run(conn, dag_id, run_id)
        latest_version = dags_q.latest_spec(conn, dag_id)[0]
    if only_new:
        raise refuse(
            "only_new", "Millstream clears a run on the DAG version it runs; it adds no new tasks to it"
        )
    if run_on_latest_version and run["dag_version_id"] != latest_version:
        raise refuse(
            "run_on_latest_version", "Millstream runs a cleared run on the DAG version it started with"
        )
    if note:
        raise refuse("note", NO_NOTES)
    cleared = control.clear(store, dag_id, run_id=run_id, only_failed=only_failed, dry_run=dry_run)
    if not dry_run:
        return []
    wanted = {(c.task_id, c.map_index) for c in cleared}
    with store.read() as conn:
        spec = dags_q.spec_for_version(conn, run["dag_version_id"])
        rows = conn.execute(
            ti_q.api_query(ti_q.ApiFilter(run_pk=run["id"]), (("task_id", False), ("map_index", False)))
        ).mappings()
        return [ti_response(dict(r), spec) for r in rows if (r["task_id"], r["map_index"]) in wanted]


# -- query parameters -----------------------------------------------------------------------


def utc(value: datetime | None) -> datetime | None:
    """A naive time is UTC (as Airflow's coerce_datetime reads it)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def date_range(name: str) -> Callable[..., Bounds]:
    """``{name}_gte``, ``_gt``, ``_lte``, ``_lt``, as Airflow's datetime_range_filter_factory."""

    def bounds(
        gte: datetime | None = Query(None, alias=f"{name}_gte"),  # noqa: B008
        gt: datetime | None = Query(None, alias=f"{name}_gt"),  # noqa: B008
        lte: datetime | None = Query(None, alias=f"{name}_lte"),  # noqa: B008
        lt: datetime | None = Query(None, alias=f"{name}_lt"),  # noqa: B008
    ) -> Bounds:
        return (utc(gte), utc(gt), utc(lte), utc(lt))

    return bounds


def float_range(name: str) -> Callable[..., Bounds]:
    def bounds(
        gte: float | None = Query(None, alias=f"{name}_gte"),
        gt: float | None = Query(None, alias=f"{name}_gt"),
        lte: float | None = Query(None, alias=f"{name}_lte"),
        lt: float | None = Query(None, alias=f"{name}_lt"),
    ) -> Bounds:
        return (gte, gt, lte, lt)

    return bounds


def _active(bounds: Bounds) -> bool:
    return any(b is not None for b in bounds)


def enum_list(values: list[str] | None, allowed: type[DagRunState] | type[DagRunType], what: str) -> Any:
    """Airflow's multi-valued ``state`` / ``run_type``: ``none`` is null; an unknown value 422."""
    if not values:
        return None
    known = {m.value for m in allowed}
    if any(v not in known and v != "none" for v in values):
        raise HTTPException(
            422, f"Invalid value for {what}. Valid values are {', '.join(known_order(allowed))}"
        )
    return [None if v == "none" else v for v in values]


def known_order(allowed: type[DagRunState] | type[DagRunType]) -> list[str]:
    return [m.value for m in allowed]


def like_terms(value: str | None) -> list[str] | None:
    """Airflow's ``*_pattern``: ILIKE substrings, ``|`` between alternatives, ``~`` for all."""
    if value is None:
        return None
    return split_terms("%" if value == "~" else value)


def _strip(term: str) -> str:
    while term and not term[-1].isalnum():
        term = term[:-1]
    return term


def _upper(term: str) -> str | None:
    term = _strip(term)
    if not term:
        return None
    last = ord(term[-1])
    if last >= 0x10FFFF or not chr(last + 1).isalnum():
        return _upper(term[:-1])
    return term[:-1] + chr(last + 1)


def prefix_bounds(value: str | None) -> list[tuple[str, str | None]] | None:
    """Airflow's ``*_prefix_pattern``: a case-sensitive range scan per term, trailing
    punctuation dropped (so ``test_`` matches what starts with ``test``), ``~`` for all."""
    if value is None:
        return None
    return [(_strip(t), _upper(t)) for t in split_terms("" if value == "~" else value)]


def sort_keys(values: list[str] | None, allowed: tuple[str, ...], default: str) -> list[tuple[str, bool]]:
    if any(v.lstrip("-") == "updated_at" for v in values or ()):
        raise refuse("Ordering by 'updated_at'", NO_UPDATED_AT)
    return [("run_id" if k == "dag_run_id" else k, d) for k, d in order_by(values, allowed, default)]


# -- cursors --------------------------------------------------------------------------------


def encode_cursor(offset: int, backward: bool = False) -> str:
    """Millstream's cursors are opaque tokens for the position in the ordered list (the same
    pages offset paging gives); ``~`` marks a backward one, as in Airflow."""
    token = base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")
    return ("~" if backward else "") + token


def decode_cursor(cursor: str) -> int:
    token = cursor[1:] if cursor.startswith("~") else cursor
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "Invalid cursor token") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("offset"), int)
        or not 0 <= data["offset"] <= BIGGEST
    ):
        raise HTTPException(400, "Invalid cursor token structure")
    return int(data["offset"])


# -- what a list selects ---------------------------------------------------------------------


@dataclass
class RunQuery:
    """What a run list selects, read from the query string (GET) or the body (POST .../list);
    ``dag_ids == []`` selects nothing (a filter no Millstream run can match)."""

    dag_ids: list[str] | None = None
    states: list[str | None] | None = None
    run_types: list[str | None] | None = None
    ranges: dict[str, Bounds] = field(default_factory=dict)
    nullable_dates: bool = True
    like: dict[str, list[str]] = field(default_factory=dict)
    prefix: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    conf_contains: str | None = None
    version_numbers: list[int] | None = None
    consuming_asset: str | None = None

    def only(self, dag_ids: list[str]) -> None:
        self.dag_ids = dag_ids if self.dag_ids is None else [d for d in self.dag_ids if d in dag_ids]

    def select(self, conn: Connection, keys: list[tuple[str, bool]]) -> sa.Select:
        return runs_q.filtered(
            conn.dialect.name,
            dag_ids=self.dag_ids,
            states=self.states,
            run_types=self.run_types,
            ranges={k: v for k, v in self.ranges.items() if _active(v)},
            nullable_dates=self.nullable_dates,
            like=self.like,
            prefix=self.prefix,
            conf_contains=self.conf_contains,
            version_numbers=self.version_numbers,
            consuming_asset=self.consuming_asset,
            order=keys,
            now=datetime.now(UTC),
        )


def list_query(
    logical_date: Annotated[Bounds, Depends(date_range("logical_date"))],
    run_after: Annotated[Bounds, Depends(date_range("run_after"))],
    start_date: Annotated[Bounds, Depends(date_range("start_date"))],
    end_date: Annotated[Bounds, Depends(date_range("end_date"))],
    updated_at: Annotated[Bounds, Depends(date_range("updated_at"))],
    duration: Annotated[Bounds, Depends(float_range("duration"))],
    conf_contains: str | None = None,
    run_type: Annotated[list[str] | None, Query()] = None,
    state: Annotated[list[str] | None, Query()] = None,
    dag_version: Annotated[list[Annotated[int, Field(ge=-BIGGEST, le=BIGGEST)]] | None, Query()] = None,
    bundle_version: str | None = None,
    run_id_pattern: str | None = None,
    run_id_prefix_pattern: str | None = None,
    triggering_user_name_pattern: str | None = None,
    triggering_user_name_prefix_pattern: str | None = None,
    dag_id_pattern: str | None = None,
    dag_id_prefix_pattern: str | None = None,
    partition_key_pattern: str | None = None,
    partition_key_prefix_pattern: str | None = None,
    consuming_asset_pattern: str | None = None,
) -> RunQuery:
    """The run list's filters, as Airflow 3.3's ``GET .../dagRuns`` reads them."""
    if _active(updated_at):
        raise refuse("Filtering on updated_at", NO_UPDATED_AT)
    for name, value in (
        ("triggering_user_name_pattern", triggering_user_name_pattern),
        ("triggering_user_name_prefix_pattern", triggering_user_name_prefix_pattern),
    ):
        if value is not None:
            raise refuse(name, "Millstream does not record who triggered a DAG run")
    q = RunQuery(
        states=enum_list(state, DagRunState, "state"),
        run_types=enum_list(run_type, DagRunType, "run type"),
        ranges={
            "logical_date": logical_date,
            "run_after": run_after,
            "start_date": start_date,
            "end_date": end_date,
            "duration": duration,
        },
        conf_contains=conf_contains or None,
        version_numbers=dag_version or None,
        consuming_asset=consuming_asset_pattern or None,
    )
    for column, value in (("run_id", run_id_pattern), ("dag_id", dag_id_pattern)):
        if (terms := like_terms(value)) is not None:
            q.like[column] = terms
    for column, value in (("run_id", run_id_prefix_pattern), ("dag_id", dag_id_prefix_pattern)):
        if (bounds := prefix_bounds(value)) is not None:
            q.prefix[column] = bounds
    if (
        bundle_version is not None
        or partition_key_pattern is not None
        or partition_key_prefix_pattern is not None
    ):
        q.dag_ids = []  # Millstream's runs have no bundle version and no partition key
    return q
