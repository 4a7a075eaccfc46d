"""Queries about backfills and their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.core.states import RunState
from millstream.errors import NotFoundError
from millstream.store.tables import backfill, dag_run


def create(conn: Connection, **values: Any) -> int:
    return int(conn.execute(backfill.insert().values(**values)).inserted_primary_key[0])  # type: ignore[index]


def get(conn: Connection, backfill_id: int) -> sa.RowMapping:
    row = conn.execute(sa.select(backfill).where(backfill.c.id == backfill_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no backfill {backfill_id}; `millstream backfill list` shows them")
    return row


def list_all(conn: Connection, dag_id: str | None = None) -> list[sa.RowMapping]:
    q = sa.select(backfill).order_by(backfill.c.id.desc())
    if dag_id:
        q = q.where(backfill.c.dag_id == dag_id)
    return list(conn.execute(q).mappings())


def in_state(conn: Connection, *states: str) -> list[sa.RowMapping]:
    return list(conn.execute(sa.select(backfill).where(backfill.c.state.in_(states))).mappings())


def set_state(conn: Connection, backfill_id: int, state: str, completed_at: datetime | None = None) -> None:
    values: dict[str, Any] = {"state": state}
    if completed_at is not None:
        values["completed_at"] = completed_at
    conn.execute(backfill.update().where(backfill.c.id == backfill_id).values(**values))


def progress(conn: Connection, backfill_id: int) -> dict[str, int]:
    """Runs of the backfill by state (queued = waiting for their turn)."""
    rows = conn.execute(
        sa.select(dag_run.c.state, sa.func.count())
        .where(dag_run.c.backfill_id == backfill_id)
        .group_by(dag_run.c.state)
    )
    counts = {s.value: 0 for s in RunState}
    counts.update({r[0]: r[1] for r in rows})
    return counts


def fail_queued(conn: Connection, backfill_id: int, reason: str, now: datetime) -> int:
    """A cancelled backfill's runs that have not started end failed; started ones finish."""
    return conn.execute(
        dag_run.update()
        .where(dag_run.c.backfill_id == backfill_id, dag_run.c.state == RunState.QUEUED.value)
        .values(state=RunState.FAILED.value, state_reason=reason, end_date=now)
    ).rowcount


def failed_run_ids(conn: Connection, backfill_id: int, limit: int) -> list[str]:
    rows = conn.execute(
        sa.select(dag_run.c.run_id)
        .where(dag_run.c.backfill_id == backfill_id, dag_run.c.state == RunState.FAILED.value)
        .order_by(dag_run.c.backfill_order)
        .limit(limit)
    )
    return [r[0] for r in rows]


def query(*, dag_id: str | None = None, state: str | None = None) -> sa.Select:
    """Backfills matching every filter given, newest first."""
    q = sa.select(backfill).order_by(backfill.c.id.desc())
    if dag_id is not None:
        q = q.where(backfill.c.dag_id == dag_id)
    if state is not None:
        q = q.where(backfill.c.state == state)
    return q
