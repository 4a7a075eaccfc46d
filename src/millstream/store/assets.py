"""Queries about assets: the registry, events, per-consumer queues and watcher bookkeeping."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from millstream.core.assets import (
    QueuedEvent,
    alias_key,
    asset_key,
    condition_keys,
    split_key,
    validate_condition,
)
from millstream.core.model import DagSpec
from millstream.errors import ConflictError, NotFoundError
from millstream.store.tables import (
    asset,
    asset_alias,
    asset_alias_asset,
    asset_event,
    asset_queue,
    asset_ref,
    dag_run_asset_event,
    watcher_file,
)

# -- registry ------------------------------------------------------------------------------


def ensure_asset(
    conn: Connection,
    name: str,
    *,
    now: datetime,
    uri: str | None = None,
    group: str = "asset",
    extra: Mapping[str, Any] | None = None,
    update: bool = False,
) -> int:
    """The id of asset ``name``, created if new (and its definition refreshed if ``update``)."""
    row = conn.execute(sa.select(asset).where(asset.c.name == name)).mappings().first()
    values = {"uri": uri or name, "asset_group": group, "extra": dict(extra or {})}
    if row is None:
        try:
            with conn.begin_nested():
                return int(
                    conn.execute(
                        asset.insert().values(name=name, created_at=now, updated_at=now, **values)
                    ).inserted_primary_key[0]  # type: ignore[index]
                )
        except IntegrityError:  # created meanwhile by another process
            return int(conn.execute(sa.select(asset.c.id).where(asset.c.name == name)).scalar_one())
    if update and any(row[k] != v for k, v in values.items()):
        conn.execute(asset.update().where(asset.c.id == row["id"]).values(updated_at=now, **values))
    return int(row["id"])


def ensure_alias(conn: Connection, name: str) -> int:
    found = conn.execute(sa.select(asset_alias.c.id).where(asset_alias.c.name == name)).scalar()
    if found is not None:
        return int(found)
    try:
        with conn.begin_nested():
            return int(conn.execute(asset_alias.insert().values(name=name)).inserted_primary_key[0])  # type: ignore[index]
    except IntegrityError:
        return int(conn.execute(sa.select(asset_alias.c.id).where(asset_alias.c.name == name)).scalar_one())


def _check_same_uri(conn: Connection, spec: DagSpec) -> None:
    """An asset name means one thing: a DAG may not give it another uri than the DAGs
    already using it (which one would `assets emit NAME` mean?)."""
    for a in spec.assets:
        row = conn.execute(sa.select(asset.c.uri).where(asset.c.name == a["name"])).first()
        if row is None or row.uri == a["uri"]:
            continue
        others = sorted(
            set(
                conn.execute(
                    sa.select(asset_ref.c.dag_id).where(
                        asset_ref.c.key == asset_key(a["name"]), asset_ref.c.dag_id != spec.dag_id
                    )
                ).scalars()
            )
        )
        if others:
            raise ConflictError(
                f"DAG {spec.dag_id!r} defines asset {a['name']!r} with uri {a['uri']!r}, but "
                f"{', '.join(others)} use(s) it with uri {row.uri!r}; give one of them another name"
            )


def sync_dag(conn: Connection, spec: DagSpec, now: datetime) -> None:
    """Register the assets a freshly parsed DAG mentions and rebuild its references."""
    if spec.asset_trigger:
        validate_condition(spec.asset_trigger["condition"], f"DAG {spec.dag_id!r} schedule")
    _check_same_uri(conn, spec)
    for a in spec.assets:
        ensure_asset(conn, a["name"], now=now, uri=a["uri"], group=a["group"], extra=a["extra"], update=True)
    refs: set[tuple[str, str, str]] = set()
    if spec.asset_trigger:
        refs.update(("schedule", k, "") for k in condition_keys(spec.asset_trigger["condition"]))
    for t in spec.tasks:
        refs.update(("outlet", k, t.task_id) for k in t.outlets)
        refs.update(("inlet", k, t.task_id) for k in t.inlets)
    for _, key, _ in refs:
        kind, name = split_key(key)
        if kind == "alias":
            ensure_alias(conn, name)
    conn.execute(asset_ref.delete().where(asset_ref.c.dag_id == spec.dag_id))
    if refs:
        conn.execute(
            asset_ref.insert(),
            [{"dag_id": spec.dag_id, "kind": k, "key": key, "task_id": t} for k, key, t in sorted(refs)],
        )


def forget_dags(conn: Connection, dag_ids: Iterable[str]) -> None:
    """DAGs no longer defined neither consume nor produce assets."""
    ids = list(dag_ids)
    if ids:
        conn.execute(asset_ref.delete().where(asset_ref.c.dag_id.in_(ids)))


def get_asset(conn: Connection, name: str) -> sa.RowMapping:
    row = conn.execute(sa.select(asset).where(asset.c.name == name)).mappings().first()
    if row is None:
        row = conn.execute(sa.select(asset).where(asset.c.uri == name).limit(1)).mappings().first()
    if row is None:
        raise NotFoundError(
            f"no asset {name!r}; assets are registered when a DAG that mentions them is parsed "
            "(`millstream assets list` shows them)"
        )
    return row


def list_assets(conn: Connection) -> list[dict[str, Any]]:
    """Every asset with its event count and latest event time."""
    stats = (
        sa.select(
            asset_event.c.asset_id,
            sa.func.count().label("events"),
            sa.func.max(asset_event.c.timestamp).label("last_event"),
        )
        .group_by(asset_event.c.asset_id)
        .subquery()
    )
    q = (
        sa.select(asset, stats.c.events, stats.c.last_event)
        .select_from(asset.outerjoin(stats, stats.c.asset_id == asset.c.id))
        .order_by(asset.c.name)
    )
    out = []
    for r in conn.execute(q).mappings():
        d = dict(r)
        d["events"] = d["events"] or 0
        out.append(d)
    return out


def list_aliases(conn: Connection) -> list[dict[str, Any]]:
    q = (
        sa.select(asset_alias.c.name, asset.c.name.label("asset"))
        .select_from(
            asset_alias.outerjoin(
                asset_alias_asset, asset_alias_asset.c.alias_id == asset_alias.c.id
            ).outerjoin(asset, asset.c.id == asset_alias_asset.c.asset_id)
        )
        .order_by(asset_alias.c.name, asset.c.name)
    )
    by: dict[str, list[str]] = {}
    for name, target in conn.execute(q):
        by.setdefault(name, [])
        if target is not None:
            by[name].append(target)
    return [{"name": n, "assets": a} for n, a in by.items()]


def refs(conn: Connection) -> list[sa.RowMapping]:
    return list(conn.execute(sa.select(asset_ref).order_by(asset_ref.c.key, asset_ref.c.dag_id)).mappings())


# -- events --------------------------------------------------------------------------------


def refs_by_key(conn: Connection) -> dict[str, dict[str, list[str]]]:
    """asset key -> {"producers": ["dag.task"], "consumers": ["dag"], "readers": ["dag.task"]}."""
    out: dict[str, dict[str, list[str]]] = {}
    for r in refs(conn):
        slot = out.setdefault(r["key"], {"producers": [], "consumers": [], "readers": []})
        if r["kind"] == "outlet":
            slot["producers"].append(f"{r['dag_id']}.{r['task_id']}")
        elif r["kind"] == "inlet":
            slot["readers"].append(f"{r['dag_id']}.{r['task_id']}")
        else:
            slot["consumers"].append(r["dag_id"])
    return out


def record_event(
    conn: Connection,
    *,
    asset_name: str,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
    source: str = "task",
    uri: str | None = None,
    aliases: Sequence[str] = (),
    source_dag_id: str | None = None,
    source_task_id: str | None = None,
    source_run_id: str | None = None,
    source_map_index: int | None = None,
) -> int:
    """Store one event and queue it for every DAG scheduled on its asset, or on an alias
    that ever stood for it. Call inside the transaction that makes the event true (the
    producing task's success), so both happen or neither."""
    asset_id = ensure_asset(conn, asset_name, now=now, uri=uri)
    for alias in aliases:
        alias_id = ensure_alias(conn, alias)
        try:
            with conn.begin_nested():
                conn.execute(asset_alias_asset.insert().values(alias_id=alias_id, asset_id=asset_id))
        except IntegrityError:
            pass  # already known to stand for this asset
    event_id = int(
        conn.execute(
            asset_event.insert().values(
                asset_id=asset_id,
                timestamp=now,
                extra=dict(extra or {}),
                source=source,
                source_dag_id=source_dag_id,
                source_task_id=source_task_id,
                source_run_id=source_run_id,
                source_map_index=source_map_index,
                source_aliases=list(aliases),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )
    keys = [asset_key(asset_name)]
    keys += [
        alias_key(n)
        for n in conn.execute(
            sa.select(asset_alias.c.name)
            .join(asset_alias_asset, asset_alias_asset.c.alias_id == asset_alias.c.id)
            .where(asset_alias_asset.c.asset_id == asset_id)
        ).scalars()
    ]
    consumers = conn.execute(
        sa.select(asset_ref.c.dag_id, asset_ref.c.key).where(
            asset_ref.c.kind == "schedule", asset_ref.c.key.in_(keys)
        )
    ).all()
    if consumers:
        conn.execute(
            asset_queue.insert(),
            [{"dag_id": d, "event_id": event_id, "key": k, "created_at": now} for d, k in consumers],
        )
    return event_id


EVENT_COLUMNS = (
    asset_event.c.id,
    asset.c.name.label("asset_name"),
    asset.c.uri.label("asset_uri"),
    asset_event.c.timestamp,
    asset_event.c.extra,
    asset_event.c.source,
    asset_event.c.source_dag_id,
    asset_event.c.source_task_id,
    asset_event.c.source_run_id,
    asset_event.c.source_map_index,
    asset_event.c.source_aliases,
)


def events_of(
    conn: Connection, name: str, *, limit: int | None = 100, offset: int = 0, newest_first: bool = True
) -> list[sa.RowMapping]:
    asset_id = get_asset(conn, name)["id"]
    order = asset_event.c.id.desc() if newest_first else asset_event.c.id
    q = (
        sa.select(*EVENT_COLUMNS)
        .join(asset, asset.c.id == asset_event.c.asset_id)
        .where(asset_event.c.asset_id == asset_id)
        .order_by(order)
        .offset(offset)
    )
    if limit is not None:
        q = q.limit(limit)
    return list(conn.execute(q).mappings())


def events_via_alias(conn: Connection, alias: str) -> list[sa.RowMapping]:
    """Events emitted through ``alias``, oldest first (its resolved assets' events, kept
    when the event names the alias: a direct event on the same asset is not one)."""
    q = (
        sa.select(*EVENT_COLUMNS)
        .join(asset, asset.c.id == asset_event.c.asset_id)
        .join(asset_alias_asset, asset_alias_asset.c.asset_id == asset.c.id)
        .join(asset_alias, asset_alias.c.id == asset_alias_asset.c.alias_id)
        .where(asset_alias.c.name == alias)
        .order_by(asset_event.c.id)
    )
    return [r for r in conn.execute(q).mappings() if alias in (r["source_aliases"] or ())]


def count_events(conn: Connection, name: str) -> int:
    asset_id = get_asset(conn, name)["id"]
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(asset_event).where(asset_event.c.asset_id == asset_id)
        ).scalar_one()
    )


def run_events(conn: Connection, run_pk: int) -> list[sa.RowMapping]:
    """The events that triggered run ``run_pk``, oldest first."""
    q = (
        sa.select(*EVENT_COLUMNS)
        .join(asset, asset.c.id == asset_event.c.asset_id)
        .join(dag_run_asset_event, dag_run_asset_event.c.event_id == asset_event.c.id)
        .where(dag_run_asset_event.c.run_pk == run_pk)
        .order_by(asset_event.c.id)
    )
    return list(conn.execute(q).mappings())


# -- consumption ---------------------------------------------------------------------------


def consumers_with_queue(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(asset_queue.c.dag_id).distinct()).scalars())


def queued(conn: Connection, dag_id: str) -> list[sa.RowMapping]:
    """A consumer's queued rows, oldest event first, with what a person wants to see."""
    q = (
        sa.select(
            asset_queue.c.event_id,
            asset_queue.c.key,
            asset_queue.c.created_at,
            asset_event.c.timestamp,
            asset_event.c.extra,
            asset_event.c.source,
            asset.c.name.label("asset_name"),
        )
        .join(asset_event, asset_event.c.id == asset_queue.c.event_id)
        .join(asset, asset.c.id == asset_event.c.asset_id)
        .where(asset_queue.c.dag_id == dag_id)
        .order_by(asset_queue.c.event_id, asset_queue.c.key)
    )
    return list(conn.execute(q).mappings())


def consume(conn: Connection, dag_id: str, rows: Iterable[QueuedEvent]) -> None:
    by_key: dict[str, list[int]] = {}
    for r in rows:
        by_key.setdefault(r.key, []).append(r.event_id)
    for key, ids in by_key.items():  # a statement per condition leaf, not per row
        for start in range(0, len(ids), 500):
            conn.execute(
                asset_queue.delete().where(
                    asset_queue.c.dag_id == dag_id,
                    asset_queue.c.key == key,
                    asset_queue.c.event_id.in_(ids[start : start + 500]),
                )
            )


def link_run(conn: Connection, run_pk: int, event_ids: Iterable[int]) -> None:
    rows = [{"run_pk": run_pk, "event_id": e} for e in event_ids]
    if rows:
        conn.execute(dag_run_asset_event.insert(), rows)


# -- watchers ------------------------------------------------------------------------------


def _path_key(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def reported_paths(conn: Connection, watcher: str) -> set[str]:
    return set(
        conn.execute(sa.select(watcher_file.c.path).where(watcher_file.c.watcher == watcher)).scalars()
    )


def mark_reported(conn: Connection, watcher: str, path: str, size: int, mtime: float, now: datetime) -> bool:
    """Claim ``path`` for ``watcher``; False if it was reported before."""
    try:
        with conn.begin_nested():
            conn.execute(
                watcher_file.insert().values(
                    watcher=watcher,
                    path_key=_path_key(path),
                    path=path,
                    size=size,
                    mtime=mtime,
                    reported_at=now,
                )
            )
        return True
    except IntegrityError:
        return False


def set_watcher_event(conn: Connection, watcher: str, path: str, event_id: int) -> None:
    conn.execute(
        watcher_file.update()
        .where(watcher_file.c.watcher == watcher, watcher_file.c.path_key == _path_key(path))
        .values(event_id=event_id)
    )


def events_query(
    *, asset_id: int | None = None, source: str | None = None, source_dag_id: str | None = None
) -> sa.Select:
    """Events matching every filter given, newest first (the API's paged list)."""
    q = (
        sa.select(*EVENT_COLUMNS)
        .join(asset, asset.c.id == asset_event.c.asset_id)
        .order_by(asset_event.c.id.desc())
    )
    if asset_id is not None:
        q = q.where(asset_event.c.asset_id == asset_id)
    if source is not None:
        q = q.where(asset_event.c.source == source)
    if source_dag_id is not None:
        q = q.where(asset_event.c.source_dag_id == source_dag_id)
    return q
