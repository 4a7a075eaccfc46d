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
from millstream.store.tables import (
    asset,
    asset_event,
    attempt_lease,
    attempt_report,
    dag,
    dag_run,
    dag_run_asset_event,
    dag_version,
)


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


def latest_of_each(conn: Connection) -> dict[str, sa.RowMapping]:
    """dag_id -> its latest run (the highest id: the one created last), as Airflow's DAG
    list filters and orders by "the last run"."""
    last = sa.select(sa.func.max(dag_run.c.id)).group_by(dag_run.c.dag_id).scalar_subquery()
    rows = conn.execute(
        sa.select(
            dag_run.c.dag_id, dag_run.c.run_id, dag_run.c.state, dag_run.c.start_date, dag_run.c.end_date
        ).where(dag_run.c.id.in_(last))
    ).mappings()
    return {r["dag_id"]: r for r in rows}


def count_by_state(conn: Connection, dag_ids: list[str] | None = None) -> list[tuple[str, str, int]]:
    """(dag_id, state, runs) for every DAG with runs (or only ``dag_ids``), by dag_id."""
    q = sa.select(dag_run.c.dag_id, dag_run.c.state, sa.func.count()).group_by(
        dag_run.c.dag_id, dag_run.c.state
    )
    if dag_ids is not None:
        q = q.where(dag_run.c.dag_id.in_(dag_ids))
    return [(d, s, n) for d, s, n in conn.execute(q.order_by(dag_run.c.dag_id, dag_run.c.state))]


# -- Airflow's REST API (/api/v2): its filters, orderings and deletion ------------------------

#: What ``filtered`` can order by (Airflow's names; ``partition_date`` is NULL for every run).
AIRFLOW_ORDER_KEYS = (
    "id",
    "state",
    "dag_id",
    "run_id",
    "logical_date",
    "partition_date",
    "run_after",
    "start_date",
    "end_date",
    "conf",
    "duration",
)
#: Columns ``filtered`` takes ranges on; start and end dates are NULL until they happen.
_NULLABLE_RANGES = ("start_date", "end_date")


def duration_expr(dialect: str) -> sa.ColumnElement[Any]:
    """A run's duration in seconds, computed in SQL (to filter and order on), NULL until it has
    both started and ended: Airflow's ``DagRun.duration``."""
    if dialect == "sqlite":
        # Whole seconds, then the microseconds SQLAlchemy stores after them (".ffffff"):
        # julianday() keeps only milliseconds, too coarse to order runs by.
        def parts(col: Any) -> tuple[Any, Any]:
            whole = sa.cast(sa.func.strftime("%s", sa.func.substr(col, 1, 19)), sa.Integer)
            return whole, sa.cast(sa.func.substr(col, 20), sa.Float)

        (end_s, end_f), (start_s, start_f) = parts(dag_run.c.end_date), parts(dag_run.c.start_date)
        seconds: Any = (end_s - start_s) + (end_f - start_f)
    else:
        seconds = sa.func.extract("epoch", dag_run.c.end_date - dag_run.c.start_date)
    both = sa.and_(dag_run.c.end_date.is_not(None), dag_run.c.start_date.is_not(None))
    return sa.case((both, seconds), else_=sa.null())


def _range_column(name: str, dialect: str) -> sa.ColumnElement[Any]:
    return duration_expr(dialect) if name == "duration" else dag_run.c[name]


def filtered(
    dialect: str,
    *,
    dag_ids: list[str] | None = None,
    states: list[str | None] | None = None,
    run_types: list[str | None] | None = None,
    ranges: dict[str, tuple[Any, Any, Any, Any]] | None = None,
    nullable_dates: bool = True,
    like: dict[str, list[str]] | None = None,
    prefix: dict[str, list[tuple[str, str | None]]] | None = None,
    conf_contains: str | None = None,
    version_numbers: list[int] | None = None,
    consuming_asset: str | None = None,
    order: list[tuple[str, bool]] | None = None,
    now: datetime | None = None,
) -> sa.Select:
    """Runs as Airflow's run lists select them, every filter in SQL.

    ``ranges``: column -> (gte, gt, lte, lt), None where unbounded; with ``nullable_dates`` a
    run not started (ended) yet passes a lower bound on ``start_date`` (``end_date``) and an
    upper bound that ``now`` is within, as Airflow's list reads them. ``like``: column -> SQL
    ILIKE substrings, any of which matches (``%``/``_`` are wildcards, as Airflow's
    ``*_pattern``). ``prefix``: column -> (lower, upper) bounds (upper None: no upper bound,
    lower "": any non-NULL value). ``order``: [(key, descending)] from AIRFLOW_ORDER_KEYS; the
    id is the tie-breaker, in the first key's direction; NULLs sort last ascending and first
    descending on every database (PostgreSQL's order).
    """
    q = sa.select(dag_run)
    if dag_ids is not None:
        q = q.where(dag_run.c.dag_id.in_(dag_ids))
    for column, wanted in (("state", states), ("run_type", run_types)):
        if wanted:
            by = dag_run.c[column]
            q = q.where(sa.or_(*(by.is_(None) if w is None else by == w for w in wanted)))
    for name, (gte, gt, lte, lt) in (ranges or {}).items():
        rc = _range_column(name, dialect)
        open_ended = nullable_dates and name in _NULLABLE_RANGES
        # (test, whether a NULL passes it): a lower bound always, an upper one while now is within.
        tests: list[tuple[sa.ColumnElement[bool], bool]] = []
        if gte is not None:
            tests.append((rc >= gte, True))
        if gt is not None:
            tests.append((rc > gt, True))
        if lte is not None:
            tests.append((rc <= lte, open_ended and now is not None and now <= lte))
        if lt is not None:
            tests.append((rc < lt, open_ended and now is not None and now < lt))
        for cond, null_passes in tests:
            q = q.where(sa.or_(cond, rc.is_(None)) if open_ended and null_passes else cond)
    for name, terms in (like or {}).items():
        q = q.where(sa.or_(*(dag_run.c[name].ilike(f"%{t}%") for t in terms)))
    for name, bounds in (prefix or {}).items():
        col = dag_run.c[name]
        q = q.where(
            sa.or_(
                *(
                    col.is_not(None)
                    if not lo
                    else (col >= lo if hi is None else sa.and_(col >= lo, col < hi))
                    for lo, hi in bounds
                )
            )
        )
    if conf_contains:
        q = q.where(sa.cast(dag_run.c.conf, sa.Text).contains(conf_contains))
    if version_numbers:
        q = q.join(dag_version, dag_version.c.id == dag_run.c.dag_version_id).where(
            dag_version.c.version_number.in_(version_numbers)
        )
    if consuming_asset:
        text = consuming_asset.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        events = (
            sa.select(asset_event.c.id)
            .join(asset, asset.c.id == asset_event.c.asset_id)
            .where(
                sa.or_(
                    asset.c.name.ilike(f"%{text}%", escape="\\"), asset.c.uri.ilike(f"%{text}%", escape="\\")
                )
            )
        )
        runs = sa.select(dag_run_asset_event.c.run_pk).where(dag_run_asset_event.c.event_id.in_(events))
        q = q.where(dag_run.c.id.in_(runs))
    keys = list(order or [("id", False)])
    columns: dict[str, sa.ColumnElement[Any] | None] = {
        "conf": sa.cast(dag_run.c.conf, sa.Text),
        "duration": duration_expr(dialect),
        "partition_date": None,  # never set in Millstream: ordering by it leaves the tie-breaker
    }
    clauses = []
    for key, desc in keys:
        sort = columns[key] if key in columns else dag_run.c[key]
        if sort is not None:
            clauses.append(sort.desc().nulls_first() if desc else sort.asc().nulls_last())
    if "id" not in {k for k, _ in keys}:
        clauses.append(dag_run.c.id.desc() if keys[0][1] else dag_run.c.id.asc())
    return q.order_by(*clauses)


def versions_of(conn: Connection, version_ids: list[int]) -> dict[int, sa.RowMapping]:
    """id -> (id, dag_id, version_number, created_at) of these DAG versions (not their specs)."""
    if not version_ids:
        return {}
    q = sa.select(
        dag_version.c.id, dag_version.c.dag_id, dag_version.c.version_number, dag_version.c.created_at
    ).where(dag_version.c.id.in_(sorted(set(version_ids))))
    return {r["id"]: r for r in conn.execute(q).mappings()}


def display_names(conn: Connection, dag_ids: list[str]) -> dict[str, str]:
    """dag_id -> its dag_display_name, else the id (Airflow's ``dag_display_name``)."""
    if not dag_ids:
        return {}
    q = sa.select(dag.c.dag_id, dag.c.display_name).where(dag.c.dag_id.in_(sorted(set(dag_ids))))
    return {r[0]: r[1] or r[0] for r in conn.execute(q)}


def queue_again(conn: Connection, run_pk: int, reason: str) -> None:
    """A finished run goes back in line with its instances as they are (a user set it to
    queued): the scheduler continues from them. Its attempt count stays (unlike a
    backfill's :func:`requeue`), so no run-level retry starts for it."""
    conn.execute(
        dag_run.update()
        .where(dag_run.c.id == run_pk)
        .values(
            state=RunState.QUEUED.value,
            start_date=None,
            end_date=None,
            marked_state=None,
            state_reason=reason,
            clear_number=dag_run.c.clear_number + 1,
        )
    )


def delete_run(conn: Connection, run_pk: int, states: frozenset[str]) -> bool:
    """Delete a run if it is in one of ``states`` (checked in the same statement, so a run a
    scheduler starts meanwhile stays). Its task instances, results, rendered fields,
    triggers and links to the asset events it consumed go with it (their foreign keys
    cascade); remote workers' reports and leases (no foreign key) are deleted here. Asset
    events it produced and its log files stay, as in Airflow."""
    gone = conn.execute(dag_run.delete().where(dag_run.c.id == run_pk, dag_run.c.state.in_(sorted(states))))
    if gone.rowcount != 1:
        return False
    conn.execute(attempt_report.delete().where(attempt_report.c.run_pk == run_pk))
    conn.execute(attempt_lease.delete().where(attempt_lease.c.run_pk == run_pk))
    return True
