"""Task results (XComs): stored as JSON, one row per task instance and key.

The fan-in of a mapped task is read page by page in map_index order, so a task that
receives 100 000 results never loads them all at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.core.planner import Output
from millstream.store import objects
from millstream.store.tables import task_result as tr


def put_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Rows with run_pk, task_id, map_index, key, value (JSON text), length, type_name and
    ref (where a large value lives instead; None for values kept here)."""
    if rows:
        conn.execute(tr.insert(), [{"ref": None, **r} for r in rows])


def _text(value: str, ref: str | None) -> str:
    return objects.read(ref) if ref else value


_DELETE = tr.delete().where(
    tr.c.run_pk == sa.bindparam("k_run"),
    tr.c.task_id == sa.bindparam("k_task"),
    tr.c.map_index == sa.bindparam("k_idx"),
)


def delete_many(conn: Connection, keys: Sequence[dict[str, Any]]) -> None:
    """Remove earlier results of these instances (keys as from task_instances.key)."""
    if keys:
        conn.execute(_DELETE, list(keys))


def delete_task(conn: Connection, run_pk: int, task_id: str) -> None:
    conn.execute(tr.delete().where(tr.c.run_pk == run_pk, tr.c.task_id == task_id))


def get_one(conn: Connection, run_pk: int, task_id: str, map_index: int, key: str) -> str | None:
    row = conn.execute(
        sa.select(tr.c.value, tr.c.ref).where(
            tr.c.run_pk == run_pk, tr.c.task_id == task_id, tr.c.map_index == map_index, tr.c.key == key
        )
    ).first()
    return None if row is None else _text(row.value, row.ref)


def count(conn: Connection, run_pk: int, task_id: str, key: str) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(tr.c.run_pk == run_pk, tr.c.task_id == task_id, tr.c.key == key)
        ).scalar_one()
    )


def page(
    conn: Connection, run_pk: int, task_id: str, key: str, *, after: int, limit: int
) -> list[tuple[int, str]]:
    """Up to ``limit`` (map_index, JSON) pairs with map_index > ``after``, in order."""
    rows = conn.execute(
        sa.select(tr.c.map_index, tr.c.value, tr.c.ref)
        .where(tr.c.run_pk == run_pk, tr.c.task_id == task_id, tr.c.key == key, tr.c.map_index > after)
        .order_by(tr.c.map_index)
        .limit(limit)
    )
    return [(r.map_index, _text(r.value, r.ref)) for r in rows]


def nth(conn: Connection, run_pk: int, task_id: str, key: str, n: int) -> str | None:
    row = conn.execute(
        sa.select(tr.c.value, tr.c.ref)
        .where(tr.c.run_pk == run_pk, tr.c.task_id == task_id, tr.c.key == key)
        .order_by(tr.c.map_index)
        .offset(n)
        .limit(1)
    ).first()
    return None if row is None else _text(row.value, row.ref)


def outputs_of_run(conn: Connection, run_pk: int) -> dict[str, Output]:
    """Lengths of unmapped tasks' outputs: what the planner needs to expand after a restart."""
    rows = conn.execute(
        sa.select(tr.c.task_id, tr.c.key, tr.c.length, tr.c.type_name).where(
            tr.c.run_pk == run_pk, tr.c.map_index == -1
        )
    )
    by_task: dict[str, dict[str, Any]] = {}
    for task_id, key, length, type_name in rows:
        d = by_task.setdefault(task_id, {"length": None, "type_name": "NoneType", "keys": {}})
        if key == "return_value":
            d["length"], d["type_name"] = length, type_name
        else:
            d["keys"][key] = length
    return {
        t: Output(length=d["length"], type_name=d["type_name"], key_lengths=d["keys"])
        for t, d in by_task.items()
    }


def iter_all(
    conn: Connection, run_pk: int, task_id: str, key: str, batch: int = 1000
) -> Iterator[tuple[int, str]]:
    after = -2
    while True:
        rows = page(conn, run_pk, task_id, key, after=after, limit=batch)
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


# -- /api/v2 (Airflow's XCom entries) -----------------------------------------------------------------


def api_query(
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
    key: str | None = None,
    patterns: Sequence[tuple[str, str, str]] = (),
    ranges: Sequence[tuple[str, str, Any]] = (),
    order: Sequence[tuple[str, bool]] = (),
) -> sa.Select:
    """Results with their run's ids and dates, the DAG's display name and when the attempt
    that wrote them ended (``timestamp``: results are written as an attempt ends), filtered
    and ordered in SQL. ``patterns``: (field, "contains" | "prefix", term) as for task
    instances; ``ranges``: (logical_date | run_after, gte | gt | lte | lt, value)."""
    from millstream.store.tables import dag, dag_run
    from millstream.store.tables import task_instance as ti

    timestamp = sa.func.coalesce(ti.c.end_date, ti.c.start_date, dag_run.c.queued_at)
    cols: dict[str, Any] = {
        "key": tr.c.key,
        "dag_id": dag_run.c.dag_id,
        "run_id": dag_run.c.run_id,
        "task_id": tr.c.task_id,
        "map_index": tr.c.map_index,
        "timestamp": timestamp,
        "logical_date": dag_run.c.logical_date,
        "run_after": dag_run.c.run_after,
        "dag_display_name": sa.func.coalesce(dag.c.display_name, dag_run.c.dag_id),
    }
    joined = (
        tr.join(dag_run, dag_run.c.id == tr.c.run_pk)
        .outerjoin(dag, dag.c.dag_id == dag_run.c.dag_id)
        .outerjoin(
            ti,
            sa.and_(
                ti.c.run_pk == tr.c.run_pk, ti.c.task_id == tr.c.task_id, ti.c.map_index == tr.c.map_index
            ),
        )
    )
    q = sa.select(
        tr.c.key,
        tr.c.task_id,
        tr.c.map_index,
        tr.c.value,
        tr.c.ref,
        tr.c.run_pk,
        dag_run.c.dag_id,
        dag_run.c.run_id,
        dag_run.c.logical_date,
        dag_run.c.run_after,
        dag_run.c.dag_version_id,
        dag.c.display_name.label("dag_display_name"),
        timestamp.label("timestamp"),
    ).select_from(joined)
    for col, value in ((dag_run.c.dag_id, dag_id), (dag_run.c.run_id, run_id), (tr.c.task_id, task_id)):
        if value is not None:
            q = q.where(col == value)
    if map_index is not None:
        q = q.where(tr.c.map_index == map_index)
    if key is not None:
        q = q.where(tr.c.key == key)
    for name, how, term in patterns:
        col = cols[name]
        if how == "prefix":
            q = q.where(sa.func.substr(col, 1, len(term)) == term)
        elif term == "~":
            q = q.where(col.is_not(None))
        else:
            terms = [t.strip() for t in term.split("|") if t.strip()] if "|" in term else [term]
            q = q.where(sa.or_(*(col.ilike(f"%{t}%") for t in terms)))
    for name, op, value in ranges:
        col = cols[name]
        q = q.where({"gte": col >= value, "gt": col > value, "lte": col <= value, "lt": col < value}[op])
    keys = [cols[n].desc() if d else cols[n].asc() for n, d in order]
    return q.order_by(*keys, tr.c.run_pk, tr.c.task_id, tr.c.map_index, tr.c.key)


def text_of(row: Any) -> str:
    """The JSON text of a result row (read from the object store when kept there)."""
    return _text(row.value, row.ref)


def put_one(conn: Connection, run_pk: int, task_id: str, map_index: int, key: str, value: Any) -> None:
    """Write one result as JSON (replacing the one under the same key): what a user sets
    through the API, as a task's ``xcom_push`` would have."""
    import json

    conn.execute(
        tr.delete().where(
            tr.c.run_pk == run_pk, tr.c.task_id == task_id, tr.c.map_index == map_index, tr.c.key == key
        )
    )
    length = len(value) if isinstance(value, (list, tuple, dict)) else None
    put_many(
        conn,
        [
            {
                "run_pk": run_pk,
                "task_id": task_id,
                "map_index": map_index,
                "key": key,
                "value": json.dumps(value, allow_nan=False),
                "length": length,
                "type_name": type(value).__name__,
            }
        ],
    )


def delete_one(conn: Connection, run_pk: int, task_id: str, map_index: int, key: str) -> bool:
    """Remove one result; False when there was none."""
    q = tr.delete().where(
        tr.c.run_pk == run_pk, tr.c.task_id == task_id, tr.c.map_index == map_index, tr.c.key == key
    )
    return conn.execute(q).rowcount > 0
