"""Turning queued asset events into asset-triggered runs.

The decision is core's (:func:`millstream.core.assets.plan_consumption`); this module
reads the queue, and writes the runs, their links to the events and the queue deletions
in the caller's transaction, so a crash leaves either all of it or none.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping

from millstream.core.assets import Consumption, QueuedEvent, plan_consumption
from millstream.errors import NotFoundError
from millstream.store import assets as assets_q
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q

log = logging.getLogger("millstream.scheduler")


@dataclass(frozen=True)
class AssetRun:
    dag_id: str
    run_id: str
    event_ids: tuple[int, ...]


@dataclass(frozen=True)
class _Plan:
    dag_id: str
    version_id: int | None
    rows: list[RowMapping]
    consumption: Consumption

    @property
    def has_work(self) -> bool:
        return bool(self.consumption.runs or self.consumption.consumed)


def _plans(conn: Connection, *, lock: bool = False) -> Iterator[_Plan]:
    for dag_id in assets_q.consumers_with_queue(conn):
        if lock and not dags_q.try_lock(conn, dag_id):
            continue  # another scheduler is consuming this DAG's events right now
        try:
            row = dags_q.get_dag(conn, dag_id)
            version_id, spec = dags_q.latest_spec(conn, dag_id)
        except NotFoundError:
            row, version_id, spec = None, None, None
        rows = assets_q.queued(conn, dag_id)
        queued = [QueuedEvent(r["event_id"], r["key"]) for r in rows]
        if row is None or spec is None or not row["is_active"] or not spec.asset_trigger:
            # The DAG is gone or no longer scheduled on assets: its queue means nothing.
            yield _Plan(dag_id, None, rows, Consumption(consumed=set(queued)))
        elif not row["is_paused"]:  # a paused DAG's events keep until it is unpaused
            trigger = spec.asset_trigger
            plan = plan_consumption(trigger["condition"], queued, trigger.get("policy", "batch"))
            yield _Plan(dag_id, version_id, rows, plan)


def has_work(conn: Connection) -> bool:
    """Would :func:`create_asset_triggered` write anything? (Read-only, so an idle
    scheduler with events waiting for a partner takes no write lock.)"""
    return any(p.has_work for p in _plans(conn))


def create_asset_triggered(conn: Connection, now: datetime) -> list[AssetRun]:
    """Create the runs every consumer's queued events call for."""
    created: list[AssetRun] = []
    for p in _plans(conn, lock=True):
        times = {r["event_id"]: r["timestamp"] for r in p.rows}
        for event_ids in p.consumption.runs:
            assert p.version_id is not None
            stamps = [times[e] for e in event_ids]
            run_id = f"asset_triggered__{now.isoformat()}__{event_ids[-1]}"
            run_pk = runs_q.create_run(
                conn,
                dag_id=p.dag_id,
                run_id=run_id,
                version_id=p.version_id,
                run_type="asset_triggered",
                logical_date=now,
                interval=(min(stamps), max(stamps)),
                run_after=now,
                conf={},
                now=now,
            )
            assets_q.link_run(conn, run_pk, event_ids)
            created.append(AssetRun(p.dag_id, run_id, event_ids))
            log.info("created run %s of %s from asset events %s", run_id, p.dag_id, list(event_ids))
        assets_q.consume(conn, p.dag_id, p.consumption.consumed)
    return created
