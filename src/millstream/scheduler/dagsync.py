"""Bringing the store's view of DAGs up to date with a DAG folder (parse + record)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from millstream.core.external import external_warnings
from millstream.core.model import DagSpec
from millstream.errors import ConflictError, NotFoundError
from millstream.scheduler.parsing import DagFolder, Parsed
from millstream.store import Store
from millstream.store import dags as dags_q

log = logging.getLogger("millstream.scheduler")


def record_parsed(
    store: Store,
    parsed: Iterable[Parsed],
    *,
    paused_on_creation: bool,
    now: datetime | None = None,
    files: list[str] | None = None,
    folder: str | None = None,
) -> None:
    """Store new DAG versions and import errors; forget DAGs whose file is gone."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        dags_q.lock_registry(conn)  # several schedulers may record the same files at once
        for p in parsed:
            if p.error is not None:
                dags_q.set_import_error(
                    conn, p.filename, p.error.lineno, p.error.message, p.error.stacktrace, now
                )
                continue
            try:
                with conn.begin_nested():
                    dags_q.sync_parsed(
                        conn, p.specs, now=now, paused_on_create=paused_on_creation, source=p.source
                    )
            except ConflictError as e:  # clashes with another file's DAGs: report, keep the rest
                dags_q.set_import_error(conn, p.filename, None, str(e), "", now)
                continue
            dags_q.clear_import_error(conn, p.filename)
            dags_q.deactivate_missing(conn, p.filename, [s.dag_id for s in p.specs])
        if files is not None and folder is not None:
            dags_q.deactivate_files_except(conn, folder, files)
        _warn_external(conn, [s for p in parsed if p.error is None for s in p.specs])


def _warn_external(conn: Any, specs: list[DagSpec]) -> None:
    """Say at load time what a cross-DAG sensor or marker will fail on at run time."""
    if not any(t.external for s in specs for t in s.tasks):
        return

    def other(dag_id: str) -> DagSpec | None:
        try:
            return dags_q.latest_spec(conn, dag_id)[1]
        except NotFoundError:
            return None

    for w in external_warnings(specs, other):
        log.warning("%s:%s: %s", next(s.fileloc for s in specs if s.dag_id == w.dag_id), w.lineno, w.message)


def sync_folder(store: Store, folder: DagFolder, *, paused_on_creation: bool) -> list[Parsed]:
    """Parse what changed in ``folder`` and record it; returns what was parsed."""
    changed, files = folder.changed()
    parsed = folder.parse(changed) if changed else []
    record_parsed(store, parsed, paused_on_creation=paused_on_creation, files=files, folder=folder.folder)
    return parsed
