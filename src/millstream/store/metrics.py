"""What ``/metrics`` counts in the store when it is scraped: a few grouped counts, one read.

Gauges of facts (runs and task instances by state, pool slots, import errors, backfill
progress, asset events) are read here rather than counted as events, so they are right
after restarts, with several schedulers, and after users clear or mark: the store is the
truth. Every query is a ``GROUP BY`` over an index (``dag_id, state`` on both run and
instance tables), so a scrape stays cheap as the store grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.core.states import TaskState
from millstream.store.tables import (
    DEFAULT_POOL,
    asset_event,
    backfill,
    dag,
    dag_run,
    import_error,
    pool,
    task_instance,
)

#: The instance states that hold a pool slot, each with the Airflow gauge that counts it.
POOL_STATES: dict[str, str] = {
    TaskState.RUNNING.value: "running",
    TaskState.QUEUED.value: "queued",
    TaskState.DEFERRED.value: "deferred",
    TaskState.SCHEDULED.value: "scheduled",
}
#: States that take a slot (Millstream's pools count queued and running instances).
SLOT_TAKING = (TaskState.QUEUED.value, TaskState.RUNNING.value)


@dataclass
class Snapshot:
    runs: dict[tuple[str, str], int] = field(default_factory=dict)  # (dag_id, state) -> runs
    task_instances: dict[tuple[str, str], int] = field(default_factory=dict)  # (dag_id, state) -> TIs
    pools: dict[str, int] = field(default_factory=dict)  # pool -> slots
    pool_states: dict[tuple[str, str], int] = field(default_factory=dict)  # (pool, state) -> instances
    import_errors: int = 0
    dags: int = 0  # active DAGs
    # (backfill id, dag_id, run state) -> runs
    backfills: dict[tuple[int, str, str], int] = field(default_factory=dict)
    asset_events: dict[str, int] = field(default_factory=dict)  # source -> events


def snapshot(conn: Connection) -> Snapshot:
    """Every gauge of ``/metrics`` from one read (one transaction: the counts agree)."""
    snap = Snapshot()
    for dag_id, state, n in conn.execute(
        sa.select(dag_run.c.dag_id, dag_run.c.state, sa.func.count()).group_by(
            dag_run.c.dag_id, dag_run.c.state
        )
    ):
        snap.runs[(dag_id, state)] = n
    ti = task_instance
    for dag_id, state, n in conn.execute(
        sa.select(ti.c.dag_id, ti.c.state, sa.func.count()).group_by(ti.c.dag_id, ti.c.state)
    ):
        snap.task_instances[(dag_id, state)] = n
    snap.pools = {name: slots for name, slots in conn.execute(sa.select(pool.c.name, pool.c.slots))}
    for name, state, n in conn.execute(
        sa.select(ti.c.pool, ti.c.state, sa.func.count())
        .where(ti.c.state.in_(list(POOL_STATES)))
        .group_by(ti.c.pool, ti.c.state)
    ):
        key = (name or DEFAULT_POOL, state)  # no pool means the default one
        snap.pool_states[key] = snap.pool_states.get(key, 0) + n
    snap.import_errors = conn.execute(sa.select(sa.func.count()).select_from(import_error)).scalar_one()
    snap.dags = conn.execute(sa.select(sa.func.count()).select_from(dag).where(dag.c.is_active)).scalar_one()
    live = sa.select(backfill.c.id).where(backfill.c.state.in_(("running", "paused"))).scalar_subquery()
    for backfill_id, dag_id, state, n in conn.execute(
        sa.select(dag_run.c.backfill_id, dag_run.c.dag_id, dag_run.c.state, sa.func.count())
        .where(dag_run.c.backfill_id.in_(live))
        .group_by(dag_run.c.backfill_id, dag_run.c.dag_id, dag_run.c.state)
    ):
        snap.backfills[(backfill_id, dag_id, state)] = n
    for source, n in conn.execute(
        sa.select(asset_event.c.source, sa.func.count()).group_by(asset_event.c.source)
    ):
        snap.asset_events[source] = n
    return snap


def active_versions(conn: Connection) -> list[tuple[str, int]]:
    """(dag_id, latest version id) of active DAGs: which Celery queues their tasks use."""
    q = sa.select(dag.c.dag_id, dag.c.latest_version_id).where(
        dag.c.is_active, dag.c.latest_version_id.is_not(None)
    )
    return [(d, v) for d, v in conn.execute(q)]
