"""Queries about scheduler processes and which runs each one owns."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.core.states import RunState
from millstream.store.tables import dag_run, scheduler_instance


def register(conn: Connection, scheduler_id: str, hostname: str, pid: int, now: datetime) -> None:
    conn.execute(
        scheduler_instance.insert().values(
            id=scheduler_id, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now
        )
    )


def heartbeat(conn: Connection, scheduler_id: str, now: datetime) -> None:
    conn.execute(
        scheduler_instance.update().where(scheduler_instance.c.id == scheduler_id).values(heartbeat_at=now)
    )


def stop(conn: Connection, scheduler_id: str, now: datetime) -> int:
    """A clean stop hands the running runs back at once (no heartbeat timeout to wait for)."""
    conn.execute(
        scheduler_instance.update().where(scheduler_instance.c.id == scheduler_id).values(stopped_at=now)
    )
    return conn.execute(
        dag_run.update()
        .where(dag_run.c.owner == scheduler_id, dag_run.c.state == RunState.RUNNING.value)
        .values(owner=None)
    ).rowcount


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live(conn: Connection, now: datetime, timeout: float, hostname: str) -> set[str]:
    """Schedulers still beating (and, on this host, whose process still exists)."""
    since = now - timedelta(seconds=timeout)
    rows = conn.execute(
        sa.select(scheduler_instance.c.id, scheduler_instance.c.hostname, scheduler_instance.c.pid).where(
            scheduler_instance.c.stopped_at.is_(None), scheduler_instance.c.heartbeat_at >= since
        )
    )
    return {r.id for r in rows if r.hostname != hostname or _pid_alive(r.pid)}


def list_all(conn: Connection) -> list[sa.RowMapping]:
    owned = (
        sa.select(dag_run.c.owner, sa.func.count().label("runs"))
        .where(dag_run.c.state == RunState.RUNNING.value)
        .group_by(dag_run.c.owner)
        .subquery()
    )
    q = (
        sa.select(scheduler_instance, sa.func.coalesce(owned.c.runs, 0).label("running_runs"))
        .select_from(scheduler_instance.outerjoin(owned, owned.c.owner == scheduler_instance.c.id))
        .order_by(scheduler_instance.c.started_at.desc())
    )
    return list(conn.execute(q).mappings())


def orphaned_runs(conn: Connection, live_ids: set[str]) -> list[tuple[int, str | None]]:
    """Running runs nobody alive owns: (pk, their last owner)."""
    q = sa.select(dag_run.c.id, dag_run.c.owner).where(dag_run.c.state == RunState.RUNNING.value)
    if live_ids:
        q = q.where(sa.or_(dag_run.c.owner.is_(None), dag_run.c.owner.not_in(sorted(live_ids))))
    return [(r.id, r.owner) for r in conn.execute(q)]


def claim(conn: Connection, run_pk: int, previous: str | None, scheduler_id: str) -> bool:
    """Take a run over from its dead owner; False if another scheduler was faster. The
    row lock (SKIP LOCKED) lets two adopters pass each other instead of queueing."""
    locked = conn.execute(
        sa.select(dag_run.c.id)
        .where(
            dag_run.c.id == run_pk,
            dag_run.c.state == RunState.RUNNING.value,
            dag_run.c.owner.is_(None) if previous is None else dag_run.c.owner == previous,
        )
        .with_for_update(skip_locked=True)
    ).first()
    if locked is None:
        return False
    conn.execute(dag_run.update().where(dag_run.c.id == run_pk).values(owner=scheduler_id))
    return True


def owners(conn: Connection, run_pks: list[int]) -> dict[int, tuple[int, str | None]]:
    """pk -> (clear_number, owner): what a scheduler checks before writing its decisions."""
    # FOR SHARE (PostgreSQL): another scheduler's claim (SKIP LOCKED) passes over these
    # rows until we commit, so ownership cannot change between this check and our writes.
    rows = conn.execute(
        sa.select(dag_run.c.id, dag_run.c.clear_number, dag_run.c.owner)
        .where(dag_run.c.id.in_(run_pks))
        .with_for_update(read=True)
    )
    return {r.id: (r.clear_number, r.owner) for r in rows}
