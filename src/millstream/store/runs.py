"""Queries about DAG runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from millstream.core.states import RunState
from millstream.core.timetables import RunInfo
from millstream.errors import ConflictError, NotFoundError
from millstream.store.tables import dag_run


def create_run(
    conn: Connection,
    *,
    dag_id: str,
    run_id: str,
    version_id: int,
    run_type: str,
    logical_date: datetime | None,
    interval: tuple[datetime | None, datetime | None],
    run_after: datetime,
    conf: dict[str, Any],
    now: datetime,
) -> int:
    try:
        with conn.begin_nested():
            return int(
                conn.execute(
                    dag_run.insert().values(
                        dag_id=dag_id,
                        run_id=run_id,
                        dag_version_id=version_id,
                        run_type=run_type,
                        state=RunState.QUEUED.value,
                        logical_date=logical_date,
                        data_interval_start=interval[0],
                        data_interval_end=interval[1],
                        run_after=run_after,
                        conf=conf,
                        queued_at=now,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )
    except IntegrityError:
        raise ConflictError(f"DAG {dag_id!r} already has a run {run_id!r}") from None


def get_run(conn: Connection, dag_id: str, run_id: str) -> sa.RowMapping:
    row = (
        conn.execute(sa.select(dag_run).where(dag_run.c.dag_id == dag_id, dag_run.c.run_id == run_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(
            f"DAG {dag_id!r} has no run {run_id!r}; `millstream dags list-runs {dag_id}` lists them"
        )
    return row


def get_run_by_pk(conn: Connection, run_pk: int) -> sa.RowMapping:
    return conn.execute(sa.select(dag_run).where(dag_run.c.id == run_pk)).mappings().one()


def list_runs(
    conn: Connection, dag_id: str | None = None, *, state: str | None = None, limit: int = 100
) -> list[sa.RowMapping]:
    q = sa.select(dag_run).order_by(dag_run.c.id.desc()).limit(limit)
    if dag_id is not None:
        q = q.where(dag_run.c.dag_id == dag_id)
    if state is not None:
        q = q.where(dag_run.c.state == state)
    return list(conn.execute(q).mappings())


def runs_in_state(conn: Connection, state: RunState, *, owner: str | None = None) -> list[sa.RowMapping]:
    q = sa.select(dag_run).where(dag_run.c.state == state.value).order_by(dag_run.c.id)
    if owner is not None:
        q = q.where(dag_run.c.owner == owner)
    return list(conn.execute(q).mappings())


def count_active(conn: Connection) -> dict[str, int]:
    """Running runs per DAG, backfill runs excluded (a backfill has its own limit)."""
    rows = conn.execute(
        sa.select(dag_run.c.dag_id, sa.func.count())
        .where(dag_run.c.state == RunState.RUNNING.value, dag_run.c.backfill_id.is_(None))
        .group_by(dag_run.c.dag_id)
    )
    return {r[0]: r[1] for r in rows}


def count_active_backfill_runs(conn: Connection) -> dict[int, int]:
    rows = conn.execute(
        sa.select(dag_run.c.backfill_id, sa.func.count())
        .where(dag_run.c.state == RunState.RUNNING.value, dag_run.c.backfill_id.is_not(None))
        .group_by(dag_run.c.backfill_id)
    )
    return {r[0]: r[1] for r in rows}


def queued_in_order(conn: Connection) -> list[sa.RowMapping]:
    """Queued runs: live ones first, then backfills' in their own order. Rows another
    scheduler is starting right now are skipped (SKIP LOCKED), not waited for."""
    return list(
        conn.execute(
            sa.select(dag_run)
            .where(dag_run.c.state == RunState.QUEUED.value)
            .order_by(dag_run.c.backfill_id.is_not(None), dag_run.c.backfill_order, dag_run.c.id)
            .with_for_update(skip_locked=True)
        ).mappings()
    )


def runs_between(conn: Connection, dag_id: str, start: datetime, end: datetime) -> list[sa.RowMapping]:
    return list(
        conn.execute(
            sa.select(dag_run).where(
                dag_run.c.dag_id == dag_id, dag_run.c.logical_date >= start, dag_run.c.logical_date <= end
            )
        ).mappings()
    )


def requeue(conn: Connection, run_pk: int) -> None:
    """A finished run goes back in line (its instances were cleared)."""
    conn.execute(
        dag_run.update()
        .where(dag_run.c.id == run_pk)
        .values(
            state=RunState.QUEUED.value,
            end_date=None,
            marked_state=None,
            attempt=1,
            start_date=None,
            state_reason="queued by a backfill",
            clear_number=dag_run.c.clear_number + 1,
        )
    )


def assign_backfill(conn: Connection, run_pk: int, backfill_id: int, order: int) -> None:
    conn.execute(
        dag_run.update().where(dag_run.c.id == run_pk).values(backfill_id=backfill_id, backfill_order=order)
    )


def set_state(
    conn: Connection,
    run_pk: int,
    state: RunState,
    *,
    expected: RunState | None = None,
    reason: str | None = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    owner: str | None = None,
) -> bool:
    """Conditional update: returns False (and changes nothing) if the state moved on."""
    values: dict[str, Any] = {"state": state.value}
    if owner is not None:
        values["owner"] = owner
    if reason is not None:
        values["state_reason"] = reason
    if start_date is not None:
        values["start_date"] = start_date
    if end_date is not None:
        values["end_date"] = end_date
    q = dag_run.update().where(dag_run.c.id == run_pk)
    if expected is not None:
        q = q.where(dag_run.c.state == expected.value)
    return conn.execute(q.values(**values)).rowcount == 1


def last_scheduled_info(conn: Connection, dag_id: str) -> RunInfo | None:
    """The newest scheduled run as the timetable reads it (None: the DAG has none yet)."""
    row = last_scheduled_run(conn, dag_id)
    if row is None:
        return None
    return RunInfo(
        row["logical_date"],
        row["data_interval_start"] or row["logical_date"],
        row["data_interval_end"] or row["logical_date"],
        row["run_after"],
    )


def last_scheduled_run(conn: Connection, dag_id: str) -> sa.RowMapping | None:
    """The newest run the timetable created: where the timetable continues from."""
    return (
        conn.execute(
            sa.select(dag_run)
            .where(dag_run.c.dag_id == dag_id, dag_run.c.run_type == "scheduled")
            .order_by(dag_run.c.logical_date.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )


def mark_cleared(conn: Connection, run_pk: int, now: datetime | None = None) -> None:
    """A run with cleared instances runs again, from now (its dagrun_timeout counts anew,
    an earlier mark no longer applies); schedulers see the new clear_number."""
    values: dict[str, Any] = dict(
        state=RunState.RUNNING.value,
        end_date=None,
        marked_state=None,
        state_reason="cleared",
        clear_number=dag_run.c.clear_number + 1,
    )
    if now is not None:
        values["start_date"] = now
    conn.execute(dag_run.update().where(dag_run.c.id == run_pk).values(**values))


def queued_dag_ids(conn: Connection) -> list[str]:
    q = sa.select(dag_run.c.dag_id).where(dag_run.c.state == RunState.QUEUED.value).distinct()
    return sorted(conn.execute(q).scalars())


def count_queued_live(conn: Connection, dag_id: str) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(dag_run)
            .where(
                dag_run.c.dag_id == dag_id,
                dag_run.c.state == RunState.QUEUED.value,
                dag_run.c.backfill_id.is_(None),
            )
        ).scalar_one()
    )


def running_clear_numbers(conn: Connection, owner: str | None = None) -> dict[int, int]:
    q = sa.select(dag_run.c.id, dag_run.c.clear_number).where(dag_run.c.state == RunState.RUNNING.value)
    if owner is not None:
        q = q.where(dag_run.c.owner == owner)
    return {r[0]: r[1] for r in conn.execute(q)}


def mark(conn: Connection, run_pk: int, state: RunState, *, finished: bool) -> None:
    """Record a user's mark; a run with teardowns still to run stays running until then."""
    values: dict[str, Any] = {"marked_state": state.value, "clear_number": dag_run.c.clear_number + 1}
    if finished:
        values["state"] = state.value
        values["state_reason"] = f"marked {state} by a user"
    else:
        values["state_reason"] = f"marked {state} by a user; running its teardowns"
    conn.execute(dag_run.update().where(dag_run.c.id == run_pk).values(**values))


def set_marked(conn: Connection, run_pk: int, state: RunState, reason: str) -> None:
    """The scheduler decided the run's end (dagrun_timeout); it finishes after teardowns."""
    conn.execute(
        dag_run.update().where(dag_run.c.id == run_pk).values(marked_state=state.value, state_reason=reason)
    )


def next_attempt(conn: Connection, run_pk: int) -> None:
    """Start the next run-level attempt of a run whose failed work was cleared."""
    conn.execute(
        dag_run.update()
        .where(dag_run.c.id == run_pk)
        .values(
            attempt=dag_run.c.attempt + 1,
            state=RunState.RUNNING.value,
            end_date=None,
            state_reason="retrying the run",
            clear_number=dag_run.c.clear_number + 1,
        )
    )


def set_deadlines_fired(conn: Connection, run_pk: int, names: list[str]) -> None:
    conn.execute(dag_run.update().where(dag_run.c.id == run_pk).values(deadlines_fired=names))


def previous_success_interval(
    conn: Connection, dag_id: str, logical_date: datetime | None
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """The data interval and start date of the latest successful run before ``logical_date``."""
    if logical_date is None:
        return (None, None, None)
    row = conn.execute(
        sa.select(dag_run.c.data_interval_start, dag_run.c.data_interval_end, dag_run.c.start_date)
        .where(
            dag_run.c.dag_id == dag_id,
            dag_run.c.state == RunState.SUCCESS.value,
            dag_run.c.logical_date < logical_date,
        )
        .order_by(dag_run.c.logical_date.desc())
        .limit(1)
    ).first()
    return (row[0], row[1], row[2]) if row else (None, None, None)


def any_queued(conn: Connection) -> bool:
    return (
        conn.execute(sa.select(dag_run.c.id).where(dag_run.c.state == RunState.QUEUED.value).limit(1)).first()
        is not None
    )


def query(
    dag_id: str | None = None,
    *,
    state: str | None = None,
    run_type: str | None = None,
    logical_date_gte: datetime | None = None,
    logical_date_lte: datetime | None = None,
    backfill_id: int | None = None,
    by_logical_date: bool = False,
) -> sa.Select:
    """Runs matching every filter given, newest first (for the API's paged lists): newest
    created, or with ``by_logical_date`` latest logical date (a grid's time axis, where a
    backfill's runs, created together, fall in their place)."""
    order = (
        (dag_run.c.logical_date.desc(), dag_run.c.id.desc()) if by_logical_date else (dag_run.c.id.desc(),)
    )
    q = sa.select(dag_run).order_by(*order)
    if dag_id is not None:
        q = q.where(dag_run.c.dag_id == dag_id)
    if state is not None:
        q = q.where(dag_run.c.state == state)
    if run_type is not None:
        q = q.where(dag_run.c.run_type == run_type)
    if logical_date_gte is not None:
        q = q.where(dag_run.c.logical_date >= logical_date_gte)
    if logical_date_lte is not None:
        q = q.where(dag_run.c.logical_date <= logical_date_lte)
    if backfill_id is not None:
        q = q.where(dag_run.c.backfill_id == backfill_id)
    return q


def recent(conn: Connection, dag_ids: list[str], per_dag: int) -> dict[str, list[sa.RowMapping]]:
    """The latest ``per_dag`` runs of each DAG, newest first."""
    ranked = sa.select(
        dag_run.c.dag_id,
        dag_run.c.run_id,
        dag_run.c.state,
        dag_run.c.logical_date,
        sa.func.row_number().over(partition_by=dag_run.c.dag_id, order_by=dag_run.c.id.desc()).label("n"),
    ).where(dag_run.c.dag_id.in_(dag_ids))
    sub = ranked.subquery()
    rows = conn.execute(sa.select(sub).where(sub.c.n <= per_dag).order_by(sub.c.dag_id, sub.c.n)).mappings()
    out: dict[str, list[sa.RowMapping]] = {d: [] for d in dag_ids}
    for r in rows:
        out[r["dag_id"]].append(r)
    return out
