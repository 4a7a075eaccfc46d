"""Each attempt's rendered template fields: written with the attempt's end, read by
``millstream tasks render``, the API and the UI's Rendered tab."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.store.tables import rendered_field as rf


def put_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Rows with run_pk, task_id, map_index, try_number and fields (a dict); an attempt
    reported twice (a sensor's pokes) keeps its last rendering."""
    if not rows:
        return
    conn.execute(
        rf.delete().where(
            rf.c.run_pk == sa.bindparam("k_run"),
            rf.c.task_id == sa.bindparam("k_task"),
            rf.c.map_index == sa.bindparam("k_idx"),
            rf.c.try_number == sa.bindparam("k_try"),
        ),
        [
            {"k_run": r["run_pk"], "k_task": r["task_id"], "k_idx": r["map_index"], "k_try": r["try_number"]}
            for r in rows
        ],
    )
    conn.execute(rf.insert(), [{**r, "fields": json.dumps(r["fields"])} for r in rows])


def get(
    conn: Connection, run_pk: int, task_id: str, map_index: int, try_number: int | None = None
) -> tuple[int, dict[str, Any]] | None:
    """(try_number, fields) of the given attempt, or of the newest one that has them."""
    q = sa.select(rf.c.try_number, rf.c.fields).where(
        rf.c.run_pk == run_pk, rf.c.task_id == task_id, rf.c.map_index == map_index
    )
    if try_number is not None:
        q = q.where(rf.c.try_number == try_number)
    row = conn.execute(q.order_by(rf.c.try_number.desc()).limit(1)).first()
    return None if row is None else (row.try_number, json.loads(row.fields))


def for_run(conn: Connection, run_pk: int) -> dict[tuple[str, int], dict[str, Any]]:
    """(task_id, map_index) -> the newest attempt's fields, for every instance of a run
    that kept any (one query: ``dags test`` reads a run's worth at once)."""
    rows = conn.execute(
        sa.select(rf.c.task_id, rf.c.map_index, rf.c.fields)
        .where(rf.c.run_pk == run_pk)
        .order_by(rf.c.try_number)
    )
    return {(r.task_id, r.map_index): json.loads(r.fields) for r in rows}
