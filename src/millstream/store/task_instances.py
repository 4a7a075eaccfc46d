"""Queries about task instances. State writes are conditional on the expected old state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, bindparam

from millstream.core.model import UNMAPPED, DagSpec
from millstream.core.states import TaskState
from millstream.errors import NotFoundError
from millstream.store.tables import task_instance as ti

_BATCH = 5_000


def create_for_run(conn: Connection, run_pk: int, spec: DagSpec) -> None:
    """One row per task (mapped tasks start as their unexpanded placeholder)."""
    rows = [_row(run_pk, spec, t.task_id, UNMAPPED, TaskState.NONE) for t in spec.tasks]
    if rows:
        conn.execute(ti.insert(), rows)


def _row(run_pk: int, spec: DagSpec, task_id: str, map_index: int, state: TaskState) -> dict[str, Any]:
    t = spec.task(task_id)
    return {
        "run_pk": run_pk,
        "task_id": task_id,
        "map_index": map_index,
        "dag_id": spec.dag_id,
        "state": state.value,
        "try_number": 0,
        "max_tries": t.retries,
        "pool": t.pool,
        "priority_weight": t.priority_weight,
    }


def expand(conn: Connection, run_pk: int, spec: DagSpec, task_id: str, length: int, state: TaskState) -> None:
    """Replace a mapped task's placeholder by ``length`` instances, in bulk."""
    conn.execute(
        ti.delete().where(ti.c.run_pk == run_pk, ti.c.task_id == task_id, ti.c.map_index == UNMAPPED)
    )
    template = _row(run_pk, spec, task_id, 0, state)
    for start in range(0, length, _BATCH):
        conn.execute(
            ti.insert(), [{**template, "map_index": i} for i in range(start, min(start + _BATCH, length))]
        )


def _by_key(stmt: sa.Update) -> sa.Update:
    return stmt.where(
        ti.c.run_pk == bindparam("k_run"),
        ti.c.task_id == bindparam("k_task"),
        ti.c.map_index == bindparam("k_idx"),
    )


# Prepared once, run as executemany: one round trip per batch, not one per instance.
_SET_STATE = _by_key(ti.update()).values(
    state=bindparam("p_state"), state_reason=bindparam("p_reason"), next_retry_at=bindparam("p_retry_at")
)
_QUEUE = (
    _by_key(ti.update())
    .where(ti.c.state == TaskState.SCHEDULED.value)
    .values(state=TaskState.QUEUED.value, try_number=ti.c.try_number + 1, state_reason="queued")
)
_START = (
    _by_key(ti.update())
    .where(ti.c.state == TaskState.QUEUED.value)
    .values(
        state=TaskState.RUNNING.value,
        start_date=bindparam("p_start"),
        pid=bindparam("p_pid"),
        hostname=bindparam("p_host"),
        state_reason="running",
    )
)
_FINISH = _by_key(ti.update()).values(
    end_date=bindparam("p_end"), duration=bindparam("p_duration"), label=bindparam("p_label")
)


def key(run_pk: int, task_id: str, map_index: int) -> dict[str, Any]:
    return {"k_run": run_pk, "k_task": task_id, "k_idx": map_index}


def _many(conn: Connection, stmt: sa.Update, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _BATCH):
        conn.execute(stmt, rows[start : start + _BATCH])


def set_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Rows: key(...) plus p_state, p_reason, p_retry_at."""
    _many(conn, _SET_STATE, rows)


def queue_many(conn: Connection, keys: list[dict[str, Any]]) -> None:
    """scheduled -> queued, counting a new try."""
    _many(conn, _QUEUE, keys)


def start_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """queued -> running; rows: key(...) plus p_start, p_pid, p_host."""
    _many(conn, _START, rows)


def finish_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Record end time, duration and label; rows: key(...) plus p_end, p_duration, p_label."""
    _many(conn, _FINISH, rows)


def set_states(
    conn: Connection,
    run_pk: int,
    task_id: str,
    map_indexes: Sequence[int],
    state: TaskState,
    reason: str,
    retry_at: datetime | None = None,
) -> None:
    """Set many instances of one task at once."""
    set_many(
        conn,
        [
            {**key(run_pk, task_id, i), "p_state": state.value, "p_reason": reason, "p_retry_at": retry_at}
            for i in map_indexes
        ],
    )


def set_attempt(
    conn: Connection,
    run_pk: int,
    task_id: str,
    map_index: int,
    *,
    expected: Iterable[TaskState],
    **values: Any,
) -> bool:
    """Update one instance only if it is still in an expected state (fencing a stale writer)."""
    if "state" in values and isinstance(values["state"], TaskState):
        values["state"] = values["state"].value
    q = (
        ti.update()
        .where(
            ti.c.run_pk == run_pk,
            ti.c.task_id == task_id,
            ti.c.map_index == map_index,
            ti.c.state.in_([s.value for s in expected]),
        )
        .values(**values)
    )
    return conn.execute(q).rowcount == 1


def states_of_run(conn: Connection, run_pk: int) -> list[tuple[str, int, TaskState]]:
    rows = conn.execute(sa.select(ti.c.task_id, ti.c.map_index, ti.c.state).where(ti.c.run_pk == run_pk))
    return [(r[0], r[1], TaskState(r[2])) for r in rows]


def failure_reasons(conn: Connection, run_pk: int) -> dict[str, str]:
    """Task id -> why its lowest failed instance failed: what a rebuilt planner needs to
    say why the run failed (only failed rows are read, so a healthy run costs nothing)."""
    q = (
        sa.select(ti.c.task_id, ti.c.state_reason)
        .where(ti.c.run_pk == run_pk, ti.c.state == TaskState.FAILED.value)
        .order_by(ti.c.task_id, ti.c.map_index)
    )
    out: dict[str, str] = {}
    for task_id, reason in conn.execute(q):
        out.setdefault(task_id, reason or "")
    return out


def count_for_run(conn: Connection, run_pk: int) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(ti).where(ti.c.run_pk == run_pk)).scalar_one()
    )


def count(conn: Connection, run_pk: int, task_id: str) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(ti).where(ti.c.run_pk == run_pk, ti.c.task_id == task_id)
        ).scalar_one()
    )


def raised_max_tries(conn: Connection, run_pk: int) -> dict[tuple[str, int], int]:
    """Instances whose allowed tries were raised by a clear (the rest use the task's)."""
    rows = conn.execute(
        sa.select(ti.c.task_id, ti.c.map_index, ti.c.max_tries).where(
            ti.c.run_pk == run_pk, ti.c.max_tries > 0, ti.c.try_number > 0
        )
    )
    return {(r[0], r[1]): r[2] for r in rows}


def tries_of_run(conn: Connection, run_pk: int) -> dict[tuple[str, int], int]:
    """Attempts made so far, for the instances that have made any."""
    rows = conn.execute(
        sa.select(ti.c.task_id, ti.c.map_index, ti.c.try_number).where(
            ti.c.run_pk == run_pk, ti.c.try_number > 0
        )
    )
    return {(r[0], r[1]): r[2] for r in rows}


def retry_times(conn: Connection, run_pk: int) -> dict[tuple[str, int], datetime]:
    rows = conn.execute(
        sa.select(ti.c.task_id, ti.c.map_index, ti.c.next_retry_at).where(
            ti.c.run_pk == run_pk,
            ti.c.state.in_([TaskState.UP_FOR_RETRY.value, TaskState.UP_FOR_RESCHEDULE.value]),
        )
    )
    return {(r[0], r[1]): r[2] for r in rows if r[2] is not None}


def sensor_starts(conn: Connection, run_pk: int) -> dict[tuple[str, int], datetime]:
    rows = conn.execute(
        sa.select(ti.c.task_id, ti.c.map_index, ti.c.sensor_started_at).where(
            ti.c.run_pk == run_pk, ti.c.sensor_started_at.is_not(None)
        )
    )
    return {(r[0], r[1]): r[2] for r in rows}


_RESCHEDULED = _by_key(ti.update()).values(
    try_number=ti.c.try_number - 1,
    sensor_started_at=sa.func.coalesce(ti.c.sensor_started_at, bindparam("p_first")),
)


def rescheduled_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """A poke that was not done does not use a try; remember when the first poke was."""
    _many(conn, _RESCHEDULED, rows)


def list_for_run(conn: Connection, run_pk: int, task_id: str | None = None) -> list[sa.RowMapping]:
    q = sa.select(ti).where(ti.c.run_pk == run_pk).order_by(ti.c.task_id, ti.c.map_index)
    if task_id is not None:
        q = q.where(ti.c.task_id == task_id)
    return list(conn.execute(q).mappings())


def find(conn: Connection, run_pk: int, task_id: str, map_index: int) -> sa.RowMapping | None:
    q = sa.select(ti).where(ti.c.run_pk == run_pk, ti.c.task_id == task_id, ti.c.map_index == map_index)
    return conn.execute(q).mappings().first()


def map_indexes(conn: Connection, run_pk: int, task_id: str) -> tuple[int, int] | None:
    """(lowest, highest) map index of a task in a run; None when the run has no such task."""
    q = sa.select(sa.func.min(ti.c.map_index), sa.func.max(ti.c.map_index), sa.func.count()).where(
        ti.c.run_pk == run_pk, ti.c.task_id == task_id
    )
    low, high, n = conn.execute(q).one()
    return None if n == 0 else (int(low), int(high))


def task_ids(conn: Connection, run_pk: int) -> list[str]:
    q = sa.select(ti.c.task_id).where(ti.c.run_pk == run_pk).distinct().order_by(ti.c.task_id)
    return list(conn.execute(q).scalars())


def get(conn: Connection, run_pk: int, task_id: str, map_index: int) -> sa.RowMapping:
    row = (
        conn.execute(
            sa.select(ti).where(ti.c.run_pk == run_pk, ti.c.task_id == task_id, ti.c.map_index == map_index)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(f"no task instance {task_id!r} with map index {map_index} in this run")
    return row


_CLEAR = _by_key(ti.update()).values(
    state=TaskState.NONE.value,
    state_reason="cleared",
    max_tries=bindparam("p_max_tries"),
    next_retry_at=None,
    end_date=None,
    duration=None,
    sensor_started_at=None,
)


def clear_many(conn: Connection, keys: list[dict[str, Any]], max_tries: list[int]) -> None:
    """Back to ``none``, with the task's retries available again after the tries made."""
    _many(conn, _CLEAR, [{**k, "p_max_tries": m} for k, m in zip(keys, max_tries, strict=True)])


def collapse_to_placeholder(conn: Connection, run_pk: int, spec: DagSpec, task_id: str) -> None:
    """Forget a mapped task's instances; it expands again when what it maps over is done."""
    conn.execute(ti.delete().where(ti.c.run_pk == run_pk, ti.c.task_id == task_id))
    conn.execute(ti.insert(), [_row(run_pk, spec, task_id, UNMAPPED, TaskState.NONE)])


def active_elsewhere(
    conn: Connection, scheduler_id: str
) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[str, int]]:
    """Queued and running instances of runs other schedulers own: per DAG, per (DAG,
    task) and per pool (one slot each: slots per instance live in each DAG's spec)."""
    from millstream.store.tables import DEFAULT_POOL, dag_run

    rows = conn.execute(
        sa.select(ti.c.dag_id, ti.c.task_id, ti.c.pool, sa.func.count())
        .select_from(ti.join(dag_run, dag_run.c.id == ti.c.run_pk))
        .where(
            ti.c.state.in_([TaskState.QUEUED.value, TaskState.RUNNING.value]),
            dag_run.c.state == "running",
            sa.or_(dag_run.c.owner.is_(None), dag_run.c.owner != scheduler_id),
        )
        .group_by(ti.c.dag_id, ti.c.task_id, ti.c.pool)
    )
    per_dag: dict[str, int] = {}
    per_task: dict[tuple[str, str], int] = {}
    per_pool: dict[str, int] = {}
    for dag_id, task_id, pool, n in rows:
        per_dag[dag_id] = per_dag.get(dag_id, 0) + n
        per_task[(dag_id, task_id)] = per_task.get((dag_id, task_id), 0) + n
        key = pool or DEFAULT_POOL
        per_pool[key] = per_pool.get(key, 0) + n
    return per_dag, per_task, per_pool


def attempt_of(conn: Connection, key: tuple[int, str, int], *, lock: bool = False) -> tuple[str, int] | None:
    """(state, try_number) of one instance: what a remote worker checks before it runs
    (``lock``: row-locked until the transaction ends; SQLite's writers are serial anyway)."""
    run_pk, task_id, map_index = key
    q = sa.select(ti.c.state, ti.c.try_number).where(
        ti.c.run_pk == run_pk, ti.c.task_id == task_id, ti.c.map_index == map_index
    )
    row = conn.execute(q.with_for_update() if lock else q).first()
    return None if row is None else (row.state, row.try_number)


def _label_like(text: str) -> sa.ColumnElement[bool]:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return ti.c.label.ilike(f"%{escaped}%", escape="\\")


def query_for_run(
    run_pk: int,
    *,
    task_id: str | None = None,
    state: str | None = None,
    map_index: int | None = None,
    label: str | None = None,
    search: str | None = None,
) -> sa.Select:
    """A run's instances matching every filter given, by task then map index. ``label``
    matches part of the label in any case (ASCII only on SQLite); ``search`` matches a map
    index written in digits, or part of the label."""
    q = sa.select(ti).where(ti.c.run_pk == run_pk).order_by(ti.c.task_id, ti.c.map_index)
    if label:
        q = q.where(_label_like(label))
    if search:
        cond = _label_like(search)
        if search.isascii() and search.isdigit() and int(search) < 2**31:
            cond = sa.or_(ti.c.map_index == int(search), cond)
        q = q.where(cond)
    if task_id is not None:
        q = q.where(ti.c.task_id == task_id)
    if state is not None:
        q = q.where(ti.c.state == state)
    if map_index is not None:
        q = q.where(ti.c.map_index == map_index)
    return q


def state_counts(conn: Connection, run_pks: list[int]) -> list[tuple[int, str, str, int, bool]]:
    """(run_pk, task_id, state, instances, mapped) for the grid: a mapped task is one row
    per state; ``mapped`` says whether these instances have map indexes (in that run,
    whatever the DAG's latest version says)."""
    q = (
        sa.select(ti.c.run_pk, ti.c.task_id, ti.c.state, sa.func.count(), sa.func.max(ti.c.map_index))
        .where(ti.c.run_pk.in_(run_pks))
        .group_by(ti.c.run_pk, ti.c.task_id, ti.c.state)
    )
    return [(r[0], r[1], r[2], r[3], r[4] >= 0) for r in conn.execute(q)]


def spans(conn: Connection, run_pk: int) -> list[sa.RowMapping]:
    """Per task: first start, last end and instance count (a run's Gantt chart, one bar per task)."""
    q = (
        sa.select(
            ti.c.task_id,
            sa.func.min(ti.c.start_date).label("start_date"),
            sa.func.max(ti.c.end_date).label("end_date"),
            sa.func.count().label("instances"),
        )
        .where(ti.c.run_pk == run_pk)
        .group_by(ti.c.task_id)
    )
    return list(conn.execute(q).mappings())


# -- /api/v2 (Airflow's task instance lists): filters, ordering and paging in SQL ------------


@dataclass(frozen=True)
class ApiFilter:
    """What Airflow's task instance lists filter on, for :func:`api_query`. ``None`` means
    "any"; an empty list matches nothing. ``ranges`` are (field, op, value) with op one of
    gte, gt, lte, lt; ``patterns`` are (field, "contains" | "prefix", term): contains is
    case-insensitive with ``|`` for "or", as Airflow's ``*_pattern``; prefix is case-sensitive.
    ``tasks`` restricts (dag_id -> task ids) from what the DAG spec says (display names,
    groups, operators, queues), which has no column."""

    dag_ids: Sequence[str] | None = None
    run_ids: Sequence[str] | None = None
    run_pk: int | None = None
    task_ids: Sequence[str] | None = None
    states: Sequence[str] | None = None
    pools: Sequence[str] | None = None
    map_indexes: Sequence[int] | None = None
    try_numbers: Sequence[int] | None = None
    version_numbers: Sequence[int] | None = None
    mapped_only: bool = False
    ranges: Sequence[tuple[str, str, Any]] = ()
    patterns: Sequence[tuple[str, str, str]] = ()
    tasks: Mapping[str, Iterable[str]] | None = None


def _api_columns() -> dict[str, Any]:
    from millstream.store.tables import DEFAULT_POOL, dag_run, dag_version

    return {
        "state": ti.c.state,
        "duration": ti.c.duration,
        "start_date": ti.c.start_date,
        "end_date": ti.c.end_date,
        "map_index": ti.c.map_index,
        "try_number": ti.c.try_number,
        "dag_id": ti.c.dag_id,
        "task_id": ti.c.task_id,
        "pool": sa.func.coalesce(ti.c.pool, DEFAULT_POOL),  # no pool is the default pool
        "rendered_map_index": ti.c.label,
        "run_id": dag_run.c.run_id,
        "logical_date": dag_run.c.logical_date,
        "run_after": dag_run.c.run_after,
        "data_interval_start": dag_run.c.data_interval_start,
        "data_interval_end": dag_run.c.data_interval_end,
        "version_number": dag_version.c.version_number,
    }


def _contains(col: Any, term: str) -> sa.ColumnElement[bool]:
    if term == "~":  # Airflow's "any"
        return col.is_not(None)  # type: ignore[no-any-return]
    terms = [t.strip() for t in term.split("|") if t.strip()] if "|" in term else [term]
    return sa.or_(*(col.ilike(f"%{t}%") for t in terms))


def _api_where(f: ApiFilter) -> list[sa.ColumnElement[bool]]:
    from millstream.store.tables import DEFAULT_POOL, dag_run

    cols = _api_columns()
    out: list[sa.ColumnElement[bool]] = []
    if f.run_pk is not None:
        out.append(ti.c.run_pk == f.run_pk)
    for col, values in (
        # A run is of one DAG: with run_pk given, a dag_id condition would only lead SQLite
        # to the (dag_id, state) index, reading every run's instances instead of this one's.
        (ti.c.dag_id, f.dag_ids if f.run_pk is None else None),
        (dag_run.c.run_id, f.run_ids),
        (ti.c.task_id, f.task_ids),
        (ti.c.state, f.states),
        (ti.c.map_index, f.map_indexes),
        (ti.c.try_number, f.try_numbers),
        (cols["version_number"], f.version_numbers),
    ):
        if values is not None:
            out.append(col.in_(list(values)))
    if f.pools is not None:
        cond = ti.c.pool.in_(list(f.pools))
        out.append(sa.or_(cond, ti.c.pool.is_(None)) if DEFAULT_POOL in f.pools else cond)
    if f.mapped_only:
        out.append(ti.c.map_index >= 0)
    for name, op, value in f.ranges:
        col = cols[name]
        cmp = {"gte": col >= value, "gt": col > value, "lte": col <= value, "lt": col < value}[op]
        if name in ("start_date", "end_date"):
            # Airflow's nullable range: not started/ended yet passes a lower bound, and an
            # upper bound while "now" is still within it.
            now = datetime.now(UTC)
            null_ok = {"gte": True, "gt": True, "lte": now <= value, "lt": now < value}[op]
            if null_ok:
                cmp = sa.or_(cmp, col.is_(None))
        out.append(cmp)
    for name, how, term in f.patterns:
        col = cols[name]
        if how == "prefix":
            out.append(sa.func.substr(col, 1, len(term)) == term)
        else:
            out.append(_contains(col, term))
    if f.tasks is not None:
        pairs = [sa.and_(ti.c.dag_id == d, ti.c.task_id.in_(list(ids))) for d, ids in f.tasks.items()]
        out.append(sa.or_(*pairs) if pairs else sa.false())
    return out


def api_query(f: ApiFilter, order: Sequence[tuple[str, bool]] = (("map_index", False),)) -> sa.Select:
    """Instances with their run's ids and dates, DAG version and display name, and the
    current try's rendered fields, filtered and ordered in SQL (a run of 10 000 mapped
    instances is paged by the database, not sorted here). Ties are broken by the
    instance's key, in the direction of the first field."""
    from millstream.store.tables import dag, dag_run, dag_version, rendered_field

    joined = (
        ti.join(dag_run, dag_run.c.id == ti.c.run_pk)
        .join(dag_version, dag_version.c.id == dag_run.c.dag_version_id)
        .outerjoin(dag, dag.c.dag_id == ti.c.dag_id)
        .outerjoin(
            rendered_field,
            sa.and_(
                rendered_field.c.run_pk == ti.c.run_pk,
                rendered_field.c.task_id == ti.c.task_id,
                rendered_field.c.map_index == ti.c.map_index,
                rendered_field.c.try_number == ti.c.try_number,
            ),
        )
    )
    q = (
        sa.select(
            ti,
            dag_run.c.run_id,
            dag_run.c.logical_date,
            dag_run.c.run_after,
            dag_run.c.dag_version_id,
            dag_version.c.version_number,
            dag_version.c.created_at.label("version_created_at"),
            dag.c.display_name.label("dag_display_name"),
            rendered_field.c.fields.label("rendered_fields"),
        )
        .select_from(joined)
        .where(*_api_where(f))
    )
    return q.order_by(*_order_keys(order))


def _order_keys(order: Sequence[tuple[str, bool]]) -> list[Any]:
    cols = _api_columns()
    keys = []
    for name, desc in order:
        parts = [cols[name], ti.c.map_index] if name == "rendered_map_index" else [cols[name]]
        keys += [c.desc() if desc else c.asc() for c in parts]
    first_desc = bool(order) and order[0][1]
    keys += [c.desc() if first_desc else c.asc() for c in (ti.c.run_pk, ti.c.task_id, ti.c.map_index)]
    return keys


_RUN_FIELDS = {"run_id", "logical_date", "run_after", "data_interval_start", "data_interval_end"}


def api_page(
    conn: Connection, f: ApiFilter, order: Sequence[tuple[str, bool]], limit: int, offset: int
) -> tuple[list[sa.RowMapping], int]:
    """One page of :func:`api_query` and the total: the filtering, ordering and counting run
    on the instances' keys alone (joined to their run and version only when a filter or an
    ordering needs them), and only the page's rows are read in full."""
    from millstream.store.tables import dag_run, dag_version

    fields = {name for name, _ in order} | {name for name, _, _ in f.ranges} | {n for n, _, _ in f.patterns}
    needs_run = bool(fields & _RUN_FIELDS) or f.run_ids is not None or f.version_numbers is not None
    source: Any = ti
    if needs_run:
        source = ti.join(dag_run, dag_run.c.id == ti.c.run_pk)
        if f.version_numbers is not None:
            source = source.join(dag_version, dag_version.c.id == dag_run.c.dag_version_id)
    where = _api_where(f)
    total = conn.execute(sa.select(sa.func.count()).select_from(source).where(*where)).scalar_one()
    keys_q = (
        sa.select(ti.c.run_pk, ti.c.task_id, ti.c.map_index)
        .select_from(source)
        .where(*where)
        .order_by(*_order_keys(order))
    )
    keys = [tuple(k) for k in conn.execute(keys_q.limit(limit).offset(offset))]
    if not keys:
        return [], int(total)
    # By each part's set (the primary key's index serves it) and then exactly, by key.
    wide = api_query(ApiFilter(), ()).where(
        ti.c.run_pk.in_({k[0] for k in keys}),
        ti.c.task_id.in_({k[1] for k in keys}),
        ti.c.map_index.in_({k[2] for k in keys}),
    )
    by_key = {(r["run_pk"], r["task_id"], r["map_index"]): r for r in conn.execute(wide).mappings()}
    return [by_key[k] for k in keys if k in by_key], int(total)
