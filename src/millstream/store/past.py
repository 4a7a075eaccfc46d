"""What ``depends_on_past`` and ``wait_for_downstream`` wait for, read from the store.

Airflow 3.3's rule (its ``PrevDagrunDep``): the previous run is the DAG's run with the
latest logical date before this run's (with ``catchup``, the latest that is not a
manual run); the first run of a backfill, and a run with no previous run, do not wait.
The task's instances in the previous run must all be success or skipped; with
``wait_for_downstream``, so must the instances of its direct downstream tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.store.tables import dag_run, task_instance

_DONE = ("success", "skipped")


def previous_run(
    conn: Connection, dag_id: str, logical_date: datetime, *, catchup: bool
) -> sa.RowMapping | None:
    q = sa.select(dag_run.c.id, dag_run.c.run_id, dag_run.c.logical_date).where(
        dag_run.c.dag_id == dag_id, dag_run.c.logical_date < logical_date
    )
    if catchup:
        q = q.where(dag_run.c.run_type != "manual")
    return conn.execute(q.order_by(dag_run.c.logical_date.desc()).limit(1)).mappings().first()


def first_of_backfill(conn: Connection, run_pk: int) -> bool:
    row = conn.execute(
        sa.select(dag_run.c.backfill_id, dag_run.c.backfill_order).where(dag_run.c.id == run_pk)
    ).first()
    if row is None or row.backfill_id is None:
        return False
    first = conn.execute(
        sa.select(sa.func.min(dag_run.c.backfill_order)).where(dag_run.c.backfill_id == row.backfill_id)
    ).scalar()
    return bool(row.backfill_order == first)


def _states(conn: Connection, run_pk: int, task_ids: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    rows = conn.execute(
        sa.select(task_instance.c.task_id, task_instance.c.state).where(
            task_instance.c.run_pk == run_pk, task_instance.c.task_id.in_(sorted(set(task_ids)))
        )
    )
    for r in rows:
        out.setdefault(r.task_id, []).append(r.state)
    return out


def _earlier_instances(conn: Connection, dag_id: str, task_id: str, logical_date: datetime) -> bool:
    q = (
        sa.select(task_instance.c.run_pk)
        .join(dag_run, dag_run.c.id == task_instance.c.run_pk)
        .where(
            dag_run.c.dag_id == dag_id,
            task_instance.c.task_id == task_id,
            dag_run.c.logical_date < logical_date,
        )
        .limit(1)
    )
    return conn.execute(q).first() is not None


def _describe(states: list[str]) -> str:
    counts: dict[str, int] = {}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} {s}" if n > 1 else s for s, n in sorted(counts.items()))


def waiting_on_past(
    conn: Connection,
    *,
    run_pk: int,
    dag_id: str,
    logical_date: datetime | None,
    task_id: str,
    catchup: bool,
    start_date: datetime | None,
    ignore_first: bool,
    downstream: Iterable[str] | None,
) -> str | None:
    """Why the task's instances in this run must wait, or None when they may run.
    ``downstream``: its direct downstream tasks, when ``wait_for_downstream`` is set."""
    if logical_date is None or first_of_backfill(conn, run_pk):
        return None
    prev = previous_run(conn, dag_id, logical_date, catchup=catchup)
    if prev is None:
        return None
    if catchup and start_date is not None and prev["logical_date"] < start_date:
        return None  # the previous run predates the task
    states = _states(conn, prev["id"], [task_id, *(downstream or ())])
    own = states.get(task_id)
    if not own:
        if ignore_first and not _earlier_instances(conn, dag_id, task_id, logical_date):
            return None
        return (
            f"waiting: depends_on_past: the previous run {prev['run_id']!r} has no instance of "
            f"{task_id!r} yet"
        )
    bad = [s for s in own if s not in _DONE]
    if bad:
        return (
            f"waiting: depends_on_past: {task_id!r} in the previous run {prev['run_id']!r} is "
            f"{_describe(bad)}, not success or skipped; clear or mark it there"
        )
    if downstream:
        pending = sorted(t for t in downstream if any(s not in _DONE for s in states.get(t, [])))
        if pending:
            return (
                f"waiting: wait_for_downstream: in the previous run {prev['run_id']!r}, the downstream "
                f"task(s) {pending} of {task_id!r} have not all succeeded"
            )
    return None
