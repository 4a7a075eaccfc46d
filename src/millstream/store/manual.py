"""Creating a manual run: the one transaction behind ``dags trigger``, the API's trigger
and ``TriggerDagRunOperator``, so all three check the same things the same way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from millstream.core.timetables import from_spec
from millstream.sdk.params import resolve_params
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q


def create_manual_run(
    conn: Connection,
    dag_id: str,
    *,
    run_id: str,
    conf: Mapping[str, Any] | None,
    logical_date: datetime | None,
    now: datetime,
) -> None:
    """Queue a manual run; raises NotFoundError for an unknown DAG, ParamValidationError
    for a conf its params refuse, ConflictError when the run id is taken."""
    version_id, spec = dags_q.latest_spec(conn, dag_id)
    resolve_params(spec.params, conf)
    info = from_spec(spec.timetable).manual_info(logical_date or now)
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
