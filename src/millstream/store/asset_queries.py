"""Asset queries that Airflow's REST API (``/api/v2``) asks: assets by id, events filtered and
ordered in SQL, the runs each event made, aliases, and queued events per asset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.store.assets import EVENT_COLUMNS
from millstream.store.tables import (
    asset,
    asset_alias,
    asset_alias_asset,
    asset_event,
    asset_queue,
    dag_run,
    dag_run_asset_event,
)
from millstream.store.tables import dag as dag_table


def asset_by_id(conn: Connection, asset_id: int) -> sa.RowMapping | None:
    return conn.execute(sa.select(asset).where(asset.c.id == asset_id)).mappings().first()


def last_events(conn: Connection) -> dict[int, tuple[int, datetime]]:
    """asset id -> (id, timestamp) of its latest event: the latest timestamp, and the highest
    id among events that share it (as Airflow picks ``last_asset_event``)."""
    latest = (
        sa.select(asset_event.c.asset_id, sa.func.max(asset_event.c.timestamp).label("ts"))
        .group_by(asset_event.c.asset_id)
        .subquery()
    )
    q = (
        sa.select(asset_event.c.asset_id, sa.func.max(asset_event.c.id), latest.c.ts)
        .join(
            latest,
            sa.and_(asset_event.c.asset_id == latest.c.asset_id, asset_event.c.timestamp == latest.c.ts),
        )
        .group_by(asset_event.c.asset_id, latest.c.ts)
    )
    return {int(a): (int(e), ts) for a, e, ts in conn.execute(q)}


def alias_rows(conn: Connection) -> list[sa.RowMapping]:
    """Every alias with its id, by id."""
    return list(conn.execute(sa.select(asset_alias).order_by(asset_alias.c.id)).mappings())


def aliases_by_asset(conn: Connection) -> dict[int, list[sa.RowMapping]]:
    """asset id -> the aliases (id, name) it has been emitted through."""
    q = (
        sa.select(asset_alias_asset.c.asset_id, asset_alias.c.id, asset_alias.c.name)
        .join(asset_alias, asset_alias.c.id == asset_alias_asset.c.alias_id)
        .order_by(asset_alias.c.id)
    )
    out: dict[int, list[sa.RowMapping]] = {}
    for r in conn.execute(q).mappings():
        out.setdefault(int(r["asset_id"]), []).append(r)
    return out


#: Event columns Airflow's ``order_by`` may name on ``GET /assets/events``.
EVENT_ORDER = ("source_task_id", "source_dag_id", "source_run_id", "source_map_index", "timestamp")


def events_filtered(
    *,
    event_id: int | None = None,
    asset_id: int | None = None,
    source_dag_id: str | None = None,
    source_task_id: str | None = None,
    source_run_id: str | None = None,
    source_map_index: int | None = None,
    name_like: Sequence[str] = (),
    name_prefix: Sequence[str] = (),
    timestamp: Mapping[str, datetime | None] | None = None,
    order: Sequence[tuple[str, bool]] = (("timestamp", False),),
) -> sa.Select:
    """Events matching every filter given, in ``order`` (columns of :data:`EVENT_ORDER`,
    descending when True) then by id. ``name_like``: SQL LIKE patterns on the asset name, any
    may match (case-insensitive); ``name_prefix``: prefixes, any may match (case-sensitive);
    ``timestamp``: bounds keyed ``gte``/``gt``/``lte``/``lt``. A ``source_map_index`` of -1
    also matches events with none (Airflow stores -1 where Millstream stores nothing)."""
    q = sa.select(*EVENT_COLUMNS, asset_event.c.asset_id, asset.c.asset_group).join(
        asset, asset.c.id == asset_event.c.asset_id
    )
    for column, value in (
        (asset_event.c.id, event_id),
        (asset_event.c.asset_id, asset_id),
        (asset_event.c.source_dag_id, source_dag_id),
        (asset_event.c.source_task_id, source_task_id),
        (asset_event.c.source_run_id, source_run_id),
    ):
        if value is not None:
            q = q.where(column == value)
    if source_map_index is not None:
        index = asset_event.c.source_map_index
        q = q.where(
            sa.or_(index == -1, index.is_(None)) if source_map_index == -1 else index == source_map_index
        )
    if name_like:
        q = q.where(sa.or_(*(asset.c.name.ilike(p) for p in name_like)))
    if name_prefix:
        q = q.where(sa.or_(*(sa.func.substr(asset.c.name, 1, len(p)) == p for p in name_prefix)))
    ops = {"gte": "__ge__", "gt": "__gt__", "lte": "__le__", "lt": "__lt__"}
    for op, bound in (timestamp or {}).items():
        if bound is not None:
            q = q.where(getattr(asset_event.c.timestamp, ops[op])(bound))
    columns = [getattr(asset_event.c, name) for name, _ in order]
    keys = [c.desc() if desc else c.asc() for c, (_, desc) in zip(columns, order, strict=True)]
    if not any(name == "id" for name, _ in order):
        keys.append(asset_event.c.id.desc() if order and order[0][1] else asset_event.c.id.asc())
    return q.order_by(*keys)


def runs_of_events(conn: Connection, event_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """event id -> the runs it was consumed by, each with ``triggering``: whether it is the
    run's latest consumed event (the one that completed its condition)."""
    if not event_ids:
        return {}
    q = (
        sa.select(
            dag_run_asset_event.c.event_id,
            dag_run.c.id.label("run_pk"),
            dag_run.c.run_id,
            dag_run.c.dag_id,
            dag_run.c.logical_date,
            dag_run.c.start_date,
            dag_run.c.end_date,
            dag_run.c.state,
            dag_run.c.data_interval_start,
            dag_run.c.data_interval_end,
        )
        .join(dag_run, dag_run.c.id == dag_run_asset_event.c.run_pk)
        .where(dag_run_asset_event.c.event_id.in_(list(event_ids)))
        .order_by(dag_run_asset_event.c.event_id, dag_run.c.id)
    )
    rows = [dict(r) for r in conn.execute(q).mappings()]
    pks = sorted({r["run_pk"] for r in rows})
    last = dict(
        conn.execute(
            sa.select(dag_run_asset_event.c.run_pk, sa.func.max(dag_run_asset_event.c.event_id))
            .where(dag_run_asset_event.c.run_pk.in_(pks))
            .group_by(dag_run_asset_event.c.run_pk)
        ).all()
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        r["triggering"] = last.get(r["run_pk"]) == r["event_id"]
        out.setdefault(int(r["event_id"]), []).append(r)
    return out


def _queue_where(dag_id: str | None, asset_id: int | None, before: datetime | None) -> list[Any]:
    where: list[Any] = []
    if dag_id is not None:
        where.append(asset_queue.c.dag_id == dag_id)
    if asset_id is not None:
        where.append(
            asset_queue.c.event_id.in_(sa.select(asset_event.c.id).where(asset_event.c.asset_id == asset_id))
        )
    if before is not None:
        where.append(asset_queue.c.created_at < before)
    return where


def queued_by_asset(
    conn: Connection,
    *,
    dag_id: str | None = None,
    asset_id: int | None = None,
    before: datetime | None = None,
) -> list[sa.RowMapping]:
    """Pending events grouped as Airflow's queue holds them, one row per (consumer, asset):
    ``dag_id``, ``asset_id``, ``created_at`` (the oldest pending event's queueing time) and
    the consumer's ``display_name``."""
    q = (
        sa.select(
            asset_queue.c.dag_id,
            asset_event.c.asset_id,
            sa.func.min(asset_queue.c.created_at).label("created_at"),
            dag_table.c.display_name,
        )
        .join(asset_event, asset_event.c.id == asset_queue.c.event_id)
        .outerjoin(dag_table, dag_table.c.dag_id == asset_queue.c.dag_id)
        .where(*_queue_where(dag_id, asset_id, before))
        .group_by(asset_queue.c.dag_id, asset_event.c.asset_id, dag_table.c.display_name)
        .order_by(asset_queue.c.dag_id, asset_event.c.asset_id)
    )
    return list(conn.execute(q).mappings())


def drop_queued(
    conn: Connection,
    *,
    dag_id: str | None = None,
    asset_id: int | None = None,
    before: datetime | None = None,
) -> int:
    """Forget pending events (the consumer will not run for them); how many rows went."""
    return int(conn.execute(asset_queue.delete().where(*_queue_where(dag_id, asset_id, before))).rowcount)
