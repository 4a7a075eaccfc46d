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
    run_after: datetime | None = None,
    interval: tuple[datetime, datetime] | None = None,
    without_logical_date: bool = False,
) -> None:
    """Queue a manual run; raises NotFoundError for an unknown DAG, ParamValidationError
    for a conf its params refuse, ConflictError when the run id is taken.

    ``logical_date`` None means now, unless ``without_logical_date`` (Airflow 3's run with
    no logical date, hence no data interval either); ``interval`` replaces the one the
    timetable infers; ``run_after`` defaults to now."""
    version_id, spec = dags_q.latest_spec(conn, dag_id)
    resolve_params(spec.params, conf)
    span: tuple[datetime | None, datetime | None] = (None, None)
    when: datetime | None = None
    if not without_logical_date:
        when = logical_date or now
        info = from_spec(spec.timetable).manual_info(when)
        span = interval or (info.interval_start, info.interval_end)
    runs_q.create_run(
        conn,
        dag_id=dag_id,
        run_id=run_id,
        version_id=version_id,
        run_type="manual",
        logical_date=when,
        interval=span,
        run_after=run_after or now,
        conf=dict(conf or {}),
        now=now,
    )
