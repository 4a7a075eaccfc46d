"""Deferred instances' triggers: written with the deferral, claimed and beaten by a
triggerer, fired (event or failure) by it, consumed by the scheduler that owns the run.

A triggerer claims only rows whose instance is still deferred at the same try, and a
row whose triggerer stopped beating is claimable again: a dead triggerer loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, bindparam

from millstream.sdk.deferral import SCHEDULER_EVALUATED
from millstream.store.tables import task_instance as ti
from millstream.store.tables import task_trigger as tt

Key = tuple[int, str, int]


def _key_where() -> sa.ColumnElement[bool]:
    return sa.and_(
        tt.c.run_pk == bindparam("k_run"),
        tt.c.task_id == bindparam("k_task"),
        tt.c.map_index == bindparam("k_idx"),
    )


def _keys(keys: Iterable[Key]) -> list[dict[str, Any]]:
    return [{"k_run": r, "k_task": t, "k_idx": i} for r, t, i in keys]


def put_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Each row: run_pk, task_id, map_index, dag_id, try_number, classpath, kwargs,
    method_name, next_kwargs, timeout_at, created_at. Replaces an older deferral's row."""
    if not rows:
        return
    delete_many(conn, [(r["run_pk"], r["task_id"], r["map_index"]) for r in rows])
    conn.execute(tt.insert(), list(rows))


def delete_many(conn: Connection, keys: Iterable[Key]) -> None:
    params = _keys(keys)
    if params:
        conn.execute(tt.delete().where(_key_where()), params)


def _live() -> sa.ColumnElement[bool]:
    """Rows whose instance is still deferred (a new deferral replaces the row)."""
    return sa.exists().where(
        ti.c.run_pk == tt.c.run_pk,
        ti.c.task_id == tt.c.task_id,
        ti.c.map_index == tt.c.map_index,
        ti.c.state == "deferred",
    )


def claim(
    conn: Connection,
    triggerer_id: str,
    now: datetime,
    stale_before: datetime,
    capacity: int,
    *,
    stale: bool = True,
) -> list[sa.RowMapping]:
    """Take up to ``capacity`` unfired rows nobody runs, and with ``stale`` those whose
    triggerer stopped beating (asked less often: only a beat can make a claim stale)."""
    if capacity <= 0:
        return []
    nobody = tt.c.triggerer_id.is_(None)
    free = sa.and_(
        tt.c.event.is_(None),
        tt.c.failure.is_(None),
        sa.or_(nobody, tt.c.heartbeat_at < stale_before) if stale else nobody,
    )
    rows = list(
        conn.execute(
            sa.select(tt)
            .where(free, _live(), tt.c.classpath.not_in(SCHEDULER_EVALUATED))
            .order_by(tt.c.created_at)
            .limit(capacity)
        ).mappings()
    )
    taken = []
    for row in rows:
        # Conditional on what we read: two triggerers never both take a row.
        done = conn.execute(
            tt.update()
            .where(
                tt.c.run_pk == row["run_pk"],
                tt.c.task_id == row["task_id"],
                tt.c.map_index == row["map_index"],
                free,
            )
            .values(triggerer_id=triggerer_id, heartbeat_at=now)
        )
        if done.rowcount:
            taken.append(row)
    return taken


def beat(conn: Connection, triggerer_id: str, now: datetime) -> set[Key]:
    """Keep our claims alive; returns the keys still ours to run (the others were
    cleared, marked or fired meanwhile: their triggers stop)."""
    conn.execute(
        tt.update()
        .where(tt.c.triggerer_id == triggerer_id, tt.c.event.is_(None), tt.c.failure.is_(None))
        .values(heartbeat_at=now)
    )
    q = sa.select(tt.c.run_pk, tt.c.task_id, tt.c.map_index).where(
        tt.c.triggerer_id == triggerer_id, tt.c.event.is_(None), tt.c.failure.is_(None), _live()
    )
    return {(r[0], r[1], r[2]) for r in conn.execute(q)}


def fire_many(conn: Connection, triggerer_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Record what triggers gave: rows with run_pk, task_id, map_index, event (JSON or
    None), failure (text or None) and fired_at; only rows this triggerer still holds."""
    if not rows:
        return
    conn.execute(
        tt.update()
        .where(_key_where(), tt.c.triggerer_id == triggerer_id, tt.c.event.is_(None), tt.c.failure.is_(None))
        .values(event=bindparam("p_event"), failure=bindparam("p_failure"), fired_at=bindparam("p_at")),
        [
            {
                "k_run": r["run_pk"],
                "k_task": r["task_id"],
                "k_idx": r["map_index"],
                "p_event": r["event"],
                "p_failure": r["failure"],
                "p_at": r["fired_at"],
            }
            for r in rows
        ],
    )


def due(
    conn: Connection, run_pks: Sequence[int], now: datetime, *, timeouts: bool = True
) -> list[sa.RowMapping]:
    """Rows of these runs that fired or failed (and, with ``timeouts``, are past their
    timeout) that the scheduler has not acted on yet."""
    if not run_pks:
        return []
    runs = tt.c.run_pk.in_(list(run_pks))
    fired = sa.select(tt).where(tt.c.fired_at.is_not(None), tt.c.resumed_at.is_(None), runs)
    out = list(conn.execute(fired).mappings())
    if timeouts:
        late = sa.select(tt).where(tt.c.timeout_at <= now, tt.c.fired_at.is_(None), runs)
        out += list(conn.execute(late).mappings())
    return out


def resumed_many(conn: Connection, keys: Iterable[Key], now: datetime) -> None:
    """The scheduler resumed these instances: their rows stay (for next_method, should it
    restart before the attempt ran) until the resumed attempt reports."""
    params = [{**k, "p_at": now} for k in _keys(keys)]
    if params:
        conn.execute(tt.update().where(_key_where()).values(resumed_at=bindparam("p_at")), params)


def for_run(conn: Connection, run_pk: int) -> list[sa.RowMapping]:
    return list(conn.execute(sa.select(tt).where(tt.c.run_pk == run_pk)).mappings())


def get(conn: Connection, run_pk: int, task_id: str, map_index: int) -> sa.RowMapping | None:
    q = sa.select(tt).where(tt.c.run_pk == run_pk, tt.c.task_id == task_id, tt.c.map_index == map_index)
    return conn.execute(q).mappings().first()


def watching(conn: Connection, run_pks: Sequence[int]) -> list[sa.RowMapping]:
    """Unfired rows of triggers the scheduler evaluates itself, for these runs."""
    if not run_pks:
        return []
    q = sa.select(tt).where(
        tt.c.run_pk.in_(list(run_pks)),
        tt.c.classpath.in_(SCHEDULER_EVALUATED),
        tt.c.event.is_(None),
        tt.c.failure.is_(None),
    )
    return list(conn.execute(q).mappings())


def set_event_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """The scheduler's own triggers fired: rows with run_pk, task_id, map_index, event, fired_at."""
    if rows:
        conn.execute(
            tt.update().where(_key_where()).values(event=bindparam("p_event"), fired_at=bindparam("p_at")),
            [
                {
                    "k_run": r["run_pk"],
                    "k_task": r["task_id"],
                    "k_idx": r["map_index"],
                    "p_event": r["event"],
                    "p_at": r["fired_at"],
                }
                for r in rows
            ],
        )


def set_failure(conn: Connection, key: Key, failure: str, now: datetime) -> None:
    conn.execute(tt.update().where(_key_where()).values(failure=failure, fired_at=now), _keys([key])[0])
