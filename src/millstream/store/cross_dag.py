"""What one DAG may ask of another: Airflow 3's task-instance questions (``get_dr_count``,
``get_ti_count``, ``get_task_states``, ``get_dagrun_state``), asked by cross-DAG sensors and
by ``TriggerDagRunOperator`` waiting for the run it started."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.errors import NotFoundError
from millstream.store import dags as dags_q
from millstream.store.tables import dag_run as dr
from millstream.store.tables import task_instance as ti


def _runs(
    dag_id: str, logical_dates: Sequence[datetime] | None, run_ids: Sequence[str] | None
) -> sa.Select[tuple[int]]:
    q = sa.select(dr.c.id).where(dr.c.dag_id == dag_id)
    if logical_dates is not None:
        q = q.where(dr.c.logical_date.in_(list(logical_dates)))
    if run_ids is not None:
        q = q.where(dr.c.run_id.in_(list(run_ids)))
    return q


def dr_count(
    conn: Connection,
    dag_id: str,
    *,
    logical_dates: Sequence[datetime] | None = None,
    run_ids: Sequence[str] | None = None,
    states: Sequence[str] | None = None,
) -> int:
    q = sa.select(sa.func.count()).select_from(dr).where(dr.c.id.in_(_runs(dag_id, logical_dates, run_ids)))
    if states is not None:
        q = q.where(dr.c.state.in_(list(states)))
    return int(conn.execute(q).scalar_one())


def task_ids(conn: Connection, dag_id: str) -> list[str]:
    """The task ids of the DAG's latest version (NotFoundError for an unknown DAG)."""
    return dags_q.latest_spec(conn, dag_id)[1].task_ids


def group_task_ids(conn: Connection, dag_id: str, group_id: str) -> list[str]:
    """The tasks of ``group_id`` (nested groups included) in the DAG's latest version."""
    _, spec = dags_q.latest_spec(conn, dag_id)
    inside = [
        t.task_id
        for t in spec.tasks
        if t.group_id == group_id or (t.group_id or "").startswith(group_id + ".")
    ]
    if not inside:
        raise NotFoundError(f"DAG {dag_id!r} has no task group {group_id!r}")
    return inside


def _instances(
    conn: Connection,
    dag_id: str,
    task_ids: Sequence[str] | None,
    task_group_id: str | None,
    logical_dates: Sequence[datetime] | None,
    run_ids: Sequence[str] | None,
) -> list[sa.ColumnElement[bool]]:
    """Which task instances a question is about: of these runs, and these tasks (or group)."""
    if task_group_id is not None:
        task_ids = group_task_ids(conn, dag_id, task_group_id)
    where = [ti.c.run_pk.in_(_runs(dag_id, logical_dates, run_ids))]
    if task_ids is not None:
        where.append(ti.c.task_id.in_(list(task_ids)))
    return where


def run_at(conn: Connection, dag_id: str, logical_date: datetime | None) -> sa.RowMapping | None:
    """The run of ``dag_id`` at ``logical_date``, if there is one."""
    return (
        conn.execute(sa.select(dr).where(dr.c.dag_id == dag_id, dr.c.logical_date == logical_date))
        .mappings()
        .first()
    )


def ti_count(
    conn: Connection,
    dag_id: str,
    *,
    task_ids: Sequence[str] | None = None,
    task_group_id: str | None = None,
    logical_dates: Sequence[datetime] | None = None,
    run_ids: Sequence[str] | None = None,
    states: Sequence[str] | None = None,
) -> int:
    q = (
        sa.select(sa.func.count())
        .select_from(ti)
        .where(*_instances(conn, dag_id, task_ids, task_group_id, logical_dates, run_ids))
    )
    if states is not None:
        q = q.where(ti.c.state.in_(list(states)))
    return int(conn.execute(q).scalar_one())


def task_states(
    conn: Connection,
    dag_id: str,
    *,
    task_ids: Sequence[str] | None = None,
    task_group_id: str | None = None,
    logical_dates: Sequence[datetime] | None = None,
    run_ids: Sequence[str] | None = None,
) -> dict[str, dict[str, str]]:
    """run_id -> {task_id (``task[i]`` for a mapped instance): state}."""
    q = (
        sa.select(dr.c.run_id, ti.c.task_id, ti.c.map_index, ti.c.state)
        .select_from(ti.join(dr, dr.c.id == ti.c.run_pk))
        .where(*_instances(conn, dag_id, task_ids, task_group_id, logical_dates, run_ids))
    )
    out: dict[str, dict[str, str]] = {}
    for run_id, task_id, idx, state in conn.execute(q):
        out.setdefault(run_id, {})[task_id if idx < 0 else f"{task_id}[{idx}]"] = state
    return out


def dagrun_state(conn: Connection, dag_id: str, run_id: str) -> str:
    state = conn.execute(sa.select(dr.c.state).where(dr.c.dag_id == dag_id, dr.c.run_id == run_id)).scalar()
    if state is None:
        raise NotFoundError(f"DAG {dag_id!r} has no run {run_id!r}")
    return str(state)


class Questions:
    """Airflow 3's questions about other DAGs, answered on ``conn``: what a task asks
    through ``context["ti"]``, and what the scheduler asks for the triggers it answers."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get_dr_count(
        self,
        dag_id: str,
        logical_dates: Sequence[datetime] | None = None,
        run_ids: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
    ) -> int:
        return dr_count(self.conn, dag_id, logical_dates=logical_dates, run_ids=run_ids, states=states)

    def get_ti_count(
        self,
        dag_id: str,
        map_index: int | None = None,
        task_ids: Sequence[str] | None = None,
        task_group_id: str | None = None,
        logical_dates: Sequence[datetime] | None = None,
        run_ids: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
    ) -> int:
        return ti_count(
            self.conn,
            dag_id,
            task_ids=task_ids,
            task_group_id=task_group_id,
            logical_dates=logical_dates,
            run_ids=run_ids,
            states=states,
        )

    def get_task_states(
        self,
        dag_id: str,
        map_index: int | None = None,
        task_ids: Sequence[str] | None = None,
        task_group_id: str | None = None,
        logical_dates: Sequence[datetime] | None = None,
        run_ids: Sequence[str] | None = None,
    ) -> dict[str, dict[str, str]]:
        return task_states(
            self.conn, dag_id, task_ids=task_ids, task_group_id=task_group_id, logical_dates=logical_dates,
            run_ids=run_ids,
        )  # fmt: skip

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        return dagrun_state(self.conn, dag_id, run_id)
