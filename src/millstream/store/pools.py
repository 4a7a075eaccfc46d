"""Pools: named numbers of slots shared by every DAG (``pool=`` on a task)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.core.states import ACTIVE_TASK_STATES
from millstream.errors import ConflictError, NotFoundError
from millstream.store.tables import DEFAULT_POOL, pool, task_instance


def all_slots(conn: Connection) -> dict[str, int]:
    return {r[0]: r[1] for r in conn.execute(sa.select(pool.c.name, pool.c.slots))}


def list_pools(conn: Connection) -> list[dict[str, object]]:
    """Each pool with how many of its slots are taken right now."""
    used: dict[str, int] = {}
    rows_used = conn.execute(
        sa.select(task_instance.c.pool, sa.func.count())
        .where(task_instance.c.state.in_([s.value for s in ACTIVE_TASK_STATES]))
        .group_by(task_instance.c.pool)
    )
    for name, n in rows_used:  # no pool means the default one
        used[name or DEFAULT_POOL] = used.get(name or DEFAULT_POOL, 0) + n
    rows = conn.execute(sa.select(pool).order_by(pool.c.name)).mappings()
    return [{**r, "used": used.get(r["name"], 0)} for r in rows]


def state_counts(conn: Connection, states: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Pool -> state -> instances in that state, for ``states`` (what Airflow's pool
    answers show as running, queued, scheduled and deferred slots; one slot per instance,
    as :func:`list_pools` counts: slots per instance live in each DAG's spec)."""
    out: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        sa.select(task_instance.c.pool, task_instance.c.state, sa.func.count())
        .where(task_instance.c.state.in_(list(states)))
        .group_by(task_instance.c.pool, task_instance.c.state)
    )
    for name, state, n in rows:  # no pool means the default one
        per = out.setdefault(name or DEFAULT_POOL, {})
        per[state] = per.get(state, 0) + n
    return out


def set_pool(conn: Connection, name: str, slots: int, description: str | None = None) -> None:
    if not name or not name.strip():
        raise ConflictError("a pool needs a name")
    if slots < 0:
        raise ConflictError(f"pool {name!r}: slots must be 0 or more, got {slots}")
    values: dict[str, object] = {"slots": slots}
    if description is not None:
        values["description"] = description
    if conn.execute(sa.select(pool.c.name).where(pool.c.name == name)).first():
        conn.execute(pool.update().where(pool.c.name == name).values(**values))
    else:
        conn.execute(pool.insert().values(name=name, description=description or "", slots=slots))


def delete_pool(conn: Connection, name: str) -> None:
    if name == DEFAULT_POOL:
        raise ConflictError(f"{DEFAULT_POOL!r} cannot be deleted; set its slots instead")
    if conn.execute(pool.delete().where(pool.c.name == name)).rowcount == 0:
        raise NotFoundError(f"no pool {name!r}; `millstream pools list` shows them")
