"""Queries about attempts run by remote workers: their reports and their leases."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.store.tables import attempt_lease, attempt_report


def report(
    conn: Connection, key: tuple[int, str, int], try_number: int, kind: str, event: Any, now: datetime
) -> None:
    """Store a Started/Finished event for the scheduler owning the run (the database is
    trusted like the DAG files are, so the event travels pickled)."""
    run_pk, task_id, map_index = key
    conn.execute(
        attempt_report.insert().values(
            run_pk=run_pk,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
            kind=kind,
            payload=pickle.dumps(event),
            created_at=now,
        )
    )


def pending_reports(
    conn: Connection, run_pks: Iterable[int], skip: Iterable[int] = ()
) -> list[tuple[int, Any]]:
    """(id, event) of the reports on the given runs not yet deleted, oldest first.

    Not "ids above the last one read": PostgreSQL hands out ids before commit, so a report
    with a smaller id can become visible after a larger one was read.
    """
    pks = sorted(set(run_pks))
    if not pks:
        return []
    q = (
        sa.select(attempt_report.c.id, attempt_report.c.payload)
        .where(attempt_report.c.run_pk.in_(pks))
        .order_by(attempt_report.c.id)
        .limit(5000)
    )
    skipped = sorted(set(skip))
    if skipped:
        q = q.where(attempt_report.c.id.not_in(skipped))
    return [(r.id, pickle.loads(r.payload)) for r in conn.execute(q)]


def delete_old_reports(conn: Connection, before: datetime) -> None:
    """Reports nobody will read (late reports on runs that have finished)."""
    conn.execute(attempt_report.delete().where(attempt_report.c.created_at < before))


def delete_reports(conn: Connection, ids: list[int]) -> None:
    for start in range(0, len(ids), 500):
        conn.execute(attempt_report.delete().where(attempt_report.c.id.in_(ids[start : start + 500])))


def _lease_of(key: tuple[int, str, int]) -> tuple[sa.ColumnElement[bool], ...]:
    run_pk, task_id, map_index = key
    return (
        attempt_lease.c.run_pk == run_pk,
        attempt_lease.c.task_id == task_id,
        attempt_lease.c.map_index == map_index,
    )


def renew_lease(
    conn: Connection, key: tuple[int, str, int], try_number: int, hostname: str, pid: int, now: datetime
) -> None:
    run_pk, task_id, map_index = key
    where = _lease_of(key)
    values = {"try_number": try_number, "hostname": hostname, "pid": pid, "heartbeat_at": now}
    # Never over a newer try's lease: a lost attempt still beating must not hide the loss
    # of the attempt that replaced it.
    updated = conn.execute(
        attempt_lease.update().where(*where, attempt_lease.c.try_number <= try_number).values(**values)
    ).rowcount
    if updated == 0 and conn.execute(sa.select(attempt_lease.c.try_number).where(*where)).first() is None:
        conn.execute(
            attempt_lease.insert().values(run_pk=run_pk, task_id=task_id, map_index=map_index, **values)
        )


def drop_lease(conn: Connection, key: tuple[int, str, int], try_number: int) -> None:
    conn.execute(attempt_lease.delete().where(*_lease_of(key), attempt_lease.c.try_number == try_number))


def leases(
    conn: Connection, run_pks: Iterable[int]
) -> dict[tuple[int, str, int], tuple[int, datetime, str, int]]:
    """key -> (try_number, heartbeat_at, hostname, pid)."""
    pks = sorted(set(run_pks))
    if not pks:
        return {}
    rows = conn.execute(sa.select(attempt_lease).where(attempt_lease.c.run_pk.in_(pks)))
    return {
        (r.run_pk, r.task_id, r.map_index): (r.try_number, r.heartbeat_at, r.hostname, r.pid) for r in rows
    }


def has_evidence(conn: Connection, key: tuple[int, str, int], try_number: int) -> bool:
    """Did a worker take this attempt (a lease, or a report on it)? A scheduler taking a
    run over asks this, under the instance's row lock, before it sends an attempt again."""
    run_pk, task_id, map_index = key
    lease = conn.execute(
        sa.select(attempt_lease.c.try_number).where(*_lease_of(key), attempt_lease.c.try_number == try_number)
    ).first()
    if lease is not None:
        return True
    report = conn.execute(
        sa.select(attempt_report.c.id)
        .where(
            attempt_report.c.run_pk == run_pk,
            attempt_report.c.task_id == task_id,
            attempt_report.c.map_index == map_index,
            attempt_report.c.try_number == try_number,
        )
        .limit(1)
    ).first()
    return report is not None
