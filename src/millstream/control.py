"""The operations users invoke — trigger, pause, inspect — shared by the CLI and the API."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from millstream.core.timetables import from_spec
from millstream.errors import NotFoundError, ParamValidationError
from millstream.sdk.params import resolve_params
from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q


def parse_conf(text: str | None) -> dict[str, Any]:
    """``--conf`` must be a JSON object; say so clearly if it is not."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParamValidationError(f"--conf is not valid JSON: {e.msg} at position {e.pos}") from None
    if not isinstance(value, dict):
        raise ParamValidationError(f"--conf must be a JSON object, got {type(value).__name__}")
    return value


def trigger(
    store: Store,
    dag_id: str,
    *,
    conf: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    logical_date: datetime | None = None,
    now: datetime | None = None,
) -> str:
    """Create a manual run (queued); the scheduler starts it. Returns its run_id.

    Params are checked here, so a bad conf is an error for the person triggering, not a
    failed run later.
    """
    now = now or datetime.now(UTC)
    if logical_date is not None and logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=UTC)  # naive means UTC, as for start_date
    with store.begin() as conn:
        version_id, spec = dags_q.latest_spec(conn, dag_id)
        resolve_params(spec.params, conf)
        info = from_spec(spec.timetable).manual_info(logical_date or now)
        run_id = run_id or f"manual__{now.isoformat()}"
        runs_q.create_run(
            conn,
            dag_id=dag_id,
            run_id=run_id,
            version_id=version_id,
            run_type="manual",
            logical_date=logical_date or now,
            interval=(info.interval_start, info.interval_end),
            run_after=now,
            conf=dict(conf or {}),
            now=now,
        )
    return run_id


def set_paused(store: Store, dag_id: str, paused: bool) -> None:
    with store.begin() as conn:
        dags_q.set_paused(conn, dag_id, paused)


def task_instances(store: Store, dag_id: str, run_id: str) -> tuple[sa.RowMapping, list[sa.RowMapping]]:
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        run = runs_q.get_run(conn, dag_id, run_id)
        return run, ti_q.list_for_run(conn, run["id"])


def find_task_instance(
    store: Store, dag_id: str, run_id: str, task_id: str, map_index: int
) -> tuple[sa.RowMapping, sa.RowMapping]:
    run, tis = task_instances(store, dag_id, run_id)
    matching = [t for t in tis if t["task_id"] == task_id]
    if not matching:
        known = sorted({t["task_id"] for t in tis})
        raise NotFoundError(
            f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}; its tasks are {known}"
        )
    for t in matching:
        if t["map_index"] == map_index:
            return run, t
    indexes = [t["map_index"] for t in matching]
    hint = f"0..{max(indexes)}" if max(indexes) >= 0 else "-1 (not mapped)"
    raise NotFoundError(f"task {task_id!r} has no map index {map_index}; valid: {hint}")
