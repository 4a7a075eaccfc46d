"""Queries about DAGs: parsed versions, pause flags, import errors."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.core.assets import describe as describe_condition
from millstream.core.model import DagSpec
from millstream.core.timetables import from_spec
from millstream.errors import NotFoundError
from millstream.store import assets as assets_q
from millstream.store.tables import dag, dag_version, import_error


def sync_parsed(
    conn: Connection,
    specs: Iterable[DagSpec],
    *,
    now: datetime,
    paused_on_create: bool,
    source: str | None = None,
) -> dict[str, int]:
    """Record freshly parsed DAGs; a new version row when the structure or the file's code
    changed (runs pin their version: a file edited mid-run does not change that run).

    Returns the version id now current for each DAG.
    """
    out: dict[str, int] = {}
    text_hash = source_hash(source) if source is not None else None
    for spec in specs:
        fp = spec.fingerprint() if text_hash is None else f"{spec.fingerprint()}-{text_hash[:16]}"
        row = conn.execute(sa.select(dag).where(dag.c.dag_id == spec.dag_id)).mappings().first()
        latest = None
        if row and row["latest_version_id"]:
            latest = conn.execute(
                sa.select(dag_version.c.id, dag_version.c.fingerprint, dag_version.c.version_number).where(
                    dag_version.c.id == row["latest_version_id"]
                )
            ).first()
        if latest is not None and latest.fingerprint == fp:
            version_id = latest.id
        else:
            number = (latest.version_number + 1) if latest is not None else _next_number(conn, spec.dag_id)
            version_id = conn.execute(
                dag_version.insert().values(
                    dag_id=spec.dag_id,
                    version_number=number,
                    fingerprint=fp,
                    spec=spec.to_json(),
                    created_at=now,
                    source=source,
                    source_hash=text_hash,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        values: dict[str, Any] = dict(
            fileloc=spec.fileloc,
            is_active=True,
            latest_version_id=version_id,
            timetable_summary=schedule_summary(spec),
            description=spec.description,
            tags=list(spec.tags),
            last_parsed_at=now,
            display_name=spec.display_name,
            owner_links=dict(spec.owner_links) or None,
        )
        if latest is None or latest.fingerprint != fp:
            # A new version may have a new schedule: the next run is worked out again.
            values.update(next_run_logical_date=None, next_run_after=None)
        if row is None:
            paused = (
                paused_on_create if spec.is_paused_upon_creation is None else spec.is_paused_upon_creation
            )
            conn.execute(dag.insert().values(dag_id=spec.dag_id, is_paused=paused, **values))
        else:
            conn.execute(dag.update().where(dag.c.dag_id == spec.dag_id).values(**values))
        assets_q.sync_dag(conn, spec, now)
        out[spec.dag_id] = version_id
    return out


def source_hash(source: str) -> str:
    """What a DAG version records of its file's text, to tell whether the file changed."""
    return hashlib.sha256(source.encode()).hexdigest()


def schedule_summary(spec: DagSpec) -> str:
    """``0 6 * * *``, ``assets: a & b`` or ``@daily or assets: a``: what a DAG list shows."""
    time = from_spec(spec.timetable).summary
    if not spec.asset_trigger:
        return time
    assets = "assets: " + describe_condition(spec.asset_trigger["condition"])
    text = assets if spec.timetable.get("type") == "none" else f"{time} or {assets}"
    return text if len(text) <= 100 else text[:99] + "…"


def _next_number(conn: Connection, dag_id: str) -> int:
    n = conn.execute(
        sa.select(sa.func.max(dag_version.c.version_number)).where(dag_version.c.dag_id == dag_id)
    ).scalar()
    return int(n or 0) + 1


def deactivate_missing(conn: Connection, fileloc: str, present: Iterable[str]) -> None:
    """DAGs that a file no longer defines stop being scheduled (their history stays)."""
    gone = dag.c.fileloc == fileloc, dag.c.dag_id.not_in(list(present))
    assets_q.forget_dags(conn, conn.execute(sa.select(dag.c.dag_id).where(*gone)).scalars())
    conn.execute(dag.update().where(*gone).values(is_active=False))


def in_folder(column: Any, folder: str) -> Any:
    """``column`` is the file ``folder`` or a path under it (``/dags`` is not a prefix of
    ``/dags2/x.py``)."""
    folder = folder.rstrip("/") or "/"
    under = folder if folder.endswith("/") else folder + "/"
    return sa.or_(column == folder, column.startswith(under, autoescape=True))


def deactivate_files_except(conn: Connection, folder: str, files: Iterable[str]) -> None:
    """A DAG file that was deleted takes its DAGs and import error with it."""
    files = list(files)
    gone = in_folder(dag.c.fileloc, folder), dag.c.fileloc.not_in(files)
    assets_q.forget_dags(conn, conn.execute(sa.select(dag.c.dag_id).where(*gone)).scalars())
    conn.execute(dag.update().where(*gone).values(is_active=False))
    conn.execute(
        import_error.delete().where(
            in_folder(import_error.c.filename, folder), import_error.c.filename.not_in(files)
        )
    )


def owners(conn: Connection, dag_ids: Iterable[str]) -> dict[str, str]:
    """dag_id -> the file each active one is recorded from (inactive ones have no owner)."""
    ids = sorted(set(dag_ids))
    if not ids:
        return {}
    rows = conn.execute(sa.select(dag.c.dag_id, dag.c.fileloc).where(dag.c.dag_id.in_(ids), dag.c.is_active))
    return {r.dag_id: r.fileloc for r in rows}


def set_import_error(
    conn: Connection, filename: str, lineno: int | None, message: str, stacktrace: str, now: datetime
) -> None:
    conn.execute(import_error.delete().where(import_error.c.filename == filename))
    conn.execute(
        import_error.insert().values(
            filename=filename, lineno=lineno, message=message, stacktrace=stacktrace, timestamp=now
        )
    )


def clear_import_error(conn: Connection, filename: str) -> None:
    conn.execute(import_error.delete().where(import_error.c.filename == filename))


def list_import_errors(conn: Connection, *, folder: str | None = None) -> list[sa.RowMapping]:
    """Import errors by file name; ``folder``: only those of files in that folder (or file)."""
    q = sa.select(import_error).order_by(import_error.c.filename)
    if folder is not None:
        q = q.where(in_folder(import_error.c.filename, folder))
    return list(conn.execute(q).mappings())


def get_dag(conn: Connection, dag_id: str) -> sa.RowMapping:
    row = conn.execute(sa.select(dag).where(dag.c.dag_id == dag_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no DAG with id {dag_id!r}; `millstream dags list` shows the known DAGs")
    return row


def list_dags(
    conn: Connection, *, active_only: bool = True, folder: str | None = None
) -> list[sa.RowMapping]:
    """DAGs by id; ``folder``: only those recorded from files in that folder (or file)."""
    q = sa.select(dag).order_by(dag.c.dag_id)
    if active_only:
        q = q.where(dag.c.is_active)
    if folder is not None:
        q = q.where(in_folder(dag.c.fileloc, folder))
    return list(conn.execute(q).mappings())


def version_source(conn: Connection, version_id: int) -> tuple[str, str] | None:
    """(source hash, source) of a DAG version, if its file's code was recorded."""
    row = conn.execute(
        sa.select(dag_version.c.source_hash, dag_version.c.source).where(dag_version.c.id == version_id)
    ).first()
    if row is None or row.source is None:
        return None
    return row.source_hash, row.source


def lock_registry(conn: Connection) -> None:
    """Serialize recording parsed DAG files across processes until the commit (SQLite
    writers are serialized anyway; PostgreSQL takes a transaction-level advisory lock)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7210420)")


def lock(conn: Connection, dag_ids: list[str]) -> None:
    """Row-lock DAGs (in a fixed order, so two lockers cannot deadlock) until the commit."""
    if dag_ids:
        conn.execute(
            sa.select(dag.c.dag_id)
            .where(dag.c.dag_id.in_(sorted(dag_ids)))
            .order_by(dag.c.dag_id)
            .with_for_update()
        ).all()


def try_lock(conn: Connection, dag_id: str) -> bool:
    """Row-lock one DAG unless another scheduler holds it (SKIP LOCKED): False means that
    one is creating this DAG's runs right now, so we leave them to it."""
    row = conn.execute(
        sa.select(dag.c.dag_id).where(dag.c.dag_id == dag_id).with_for_update(skip_locked=True)
    ).first()
    return row is not None


def set_paused(conn: Connection, dag_id: str, paused: bool) -> None:
    get_dag(conn, dag_id)
    # Unpausing works the next run out again (catchup=False: only the latest interval).
    conn.execute(
        dag.update()
        .where(dag.c.dag_id == dag_id)
        .values(is_paused=paused, next_run_logical_date=None, next_run_after=None)
    )


def set_next_run(
    conn: Connection, dag_id: str, logical_date: datetime | None, run_after: datetime | None
) -> None:
    conn.execute(
        dag.update()
        .where(dag.c.dag_id == dag_id)
        .values(next_run_logical_date=logical_date, next_run_after=run_after)
    )


def latest_spec(conn: Connection, dag_id: str) -> tuple[int, DagSpec]:
    row = get_dag(conn, dag_id)
    if not row["latest_version_id"]:
        raise NotFoundError(f"DAG {dag_id!r} has never been parsed successfully")
    return row["latest_version_id"], spec_for_version(conn, row["latest_version_id"])


def spec_for_version(conn: Connection, version_id: int) -> DagSpec:
    text = conn.execute(sa.select(dag_version.c.spec).where(dag_version.c.id == version_id)).scalar_one()
    return _parse_spec(text)


@lru_cache(maxsize=256)
def _parse_spec(text: str) -> DagSpec:
    # Versions are immutable, so parsing the same JSON twice is wasted work.
    return DagSpec.from_json(text)


def specs_for_versions(conn: Connection, version_ids: Iterable[int]) -> dict[int, DagSpec]:
    """version id -> its DagSpec, in one read (a DAG list shows each DAG's latest version)."""
    ids = sorted(set(version_ids))
    if not ids:
        return {}
    rows = conn.execute(sa.select(dag_version.c.id, dag_version.c.spec).where(dag_version.c.id.in_(ids)))
    return {r.id: _parse_spec(r.spec) for r in rows}


def get_version(conn: Connection, dag_id: str, version_number: int | None = None) -> sa.RowMapping | None:
    """One version row of a DAG (its number, when it was recorded, its file's text); the
    latest when ``version_number`` is None."""
    q = sa.select(dag_version).where(dag_version.c.dag_id == dag_id)
    if version_number is None:
        q = q.order_by(dag_version.c.version_number.desc()).limit(1)
    else:
        q = q.where(dag_version.c.version_number == version_number)
    return conn.execute(q).mappings().first()
