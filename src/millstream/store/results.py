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
