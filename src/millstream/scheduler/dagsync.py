"""Bringing the store's view of DAGs up to date with a DAG folder (parse + record).

Everything that records parsed files comes through ``record_parsed`` (the scheduler's
folder watcher, every CLI command), so a dag_id defined in two files is settled the same
way everywhere (``core.duplicates``): an import error of the second file, in the same
table the CLI, the API and the UI read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from millstream.core import duplicates
from millstream.core.duplicates import Duplicate
from millstream.core.external import external_warnings
from millstream.core.model import DagSpec
from millstream.errors import ConflictError, NotFoundError
from millstream.scheduler.parsing import DagFolder, Parsed
from millstream.store import Store
from millstream.store import dags as dags_q

log = logging.getLogger("millstream.scheduler")


@dataclass
class Recorded:
    """What recording a batch found beyond the files' own outcomes."""

    duplicates: list[Duplicate] = field(default_factory=list)  # dag_ids files lost (their import error)
    reparse: list[str] = field(default_factory=list)  # unchanged files that may now take a DAG over


@dataclass
class Synced:
    """The files parsed, and the dag_ids some of them lost to other files."""

    parsed: list[Parsed] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)


def record_parsed(
    store: Store,
    parsed: Iterable[Parsed],
    *,
    paused_on_creation: bool,
    now: datetime | None = None,
    files: list[str] | None = None,
    folder: str | None = None,
) -> Recorded:
    """Store new DAG versions and import errors; forget DAGs whose file is gone.

    ``files`` and ``folder``: every DAG file now in ``folder``; what was recorded from
    other files there was deleted.
    """
    parsed = list(parsed)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        dags_q.lock_registry(conn)  # several schedulers may record the same files at once
        if files is not None and folder is not None:
            # First: a DAG whose file was deleted is free for a file parsed now.
            dags_q.deactivate_files_except(conn, folder, files)
        ok = [p for p in parsed if p.error is None]
        defined = {p.filename: [s.dag_id for s in p.specs] for p in ok}
        # A DAG row names the file its spec gave (``fileloc``), which is the parsed file's
        # name unless a caller recorded specs by hand: map it back to the file either way.
        same_file = {(s.dag_id, s.fileloc): p.filename for p in ok for s in p.specs}
        held = dags_q.owners(conn, (d for ids in defined.values() for d in ids))
        lost = duplicates.claim(defined, {d: same_file.get((d, f), f) for d, f in held.items()})
        lost_by_file: dict[str, list[Duplicate]] = {}
        for d in lost:
            lost_by_file.setdefault(d.filename, []).append(d)
        recorded: list[DagSpec] = []
        for p in parsed:
            if p.error is not None:
                dags_q.set_import_error(
                    conn, p.filename, p.error.lineno, p.error.message, p.error.stacktrace, now
                )
                continue
            dups = lost_by_file.get(p.filename, [])
            kept = [s for s in p.specs if s.dag_id not in {d.dag_id for d in dups}]
            try:
                with conn.begin_nested():
                    dags_q.sync_parsed(
                        conn, kept, now=now, paused_on_create=paused_on_creation, source=p.source
                    )
            except ConflictError as e:  # clashes with another file's DAGs: report, keep the rest
                text = "\n".join([str(e), *(d.message for d in dups)])
                dags_q.set_import_error(conn, p.filename, None, text, "", now)
                continue
            if dups:
                dags_q.set_import_error(conn, p.filename, None, duplicates.message(dups), "", now)
            else:
                dags_q.clear_import_error(conn, p.filename)
            dags_q.deactivate_missing(conn, p.filename, [s.dag_id for s in kept])
            recorded.extend(kept)
        reparse = _freed(conn, {p.filename for p in parsed})
        _warn_external(conn, recorded)
    return Recorded(lost, reparse)


def _freed(conn: Any, fresh: set[str]) -> list[str]:
    """Files not parsed just now whose duplicate import error is over (the owner was
    deleted or stopped defining the DAG): parsing them again hands them the DAG."""
    errors = {
        e["filename"]: e["message"] for e in dags_q.list_import_errors(conn) if e["filename"] not in fresh
    }
    ids = {d for text in errors.values() for d in duplicates.duplicated_ids(text)}
    return duplicates.freed(errors, dags_q.owners(conn, ids)) if ids else []


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


def sync_folder(store: Store, folder: DagFolder, *, paused_on_creation: bool) -> Synced:
    """Parse what changed in ``folder`` and record it; returns what was parsed."""
    changed, files = folder.changed()
    parsed = folder.parse(changed) if changed else []
    out = record_parsed(
        store, parsed, paused_on_creation=paused_on_creation, files=files, folder=folder.folder
    )
    return _settle(
        store, folder, Synced(parsed, out.duplicates), out, paused_on_creation, set(files).__contains__
    )


def sync_dag(store: Store, dag_id: str, folder: DagFolder, *, paused_on_creation: bool) -> Synced | None:
    """Bring one DAG up to date from its own file alone, parsed again only if its text
    changed since its version was recorded: a command about one DAG does not wait for
    every other file of the folder to import.

    None when the store has no active DAG ``dag_id`` from a file that still exists: the
    caller parses the folder to look for it.
    """
    with store.read() as conn:
        try:
            row = dags_q.get_dag(conn, dag_id)
        except NotFoundError:
            return None
        version = row["latest_version_id"]
        recorded = dags_q.version_source(conn, version) if version else None
    fileloc = row["fileloc"]
    if not row["is_active"] or not os.path.isfile(fileloc):
        return None
    text = Path(fileloc).read_bytes().decode("utf-8", "replace")  # as the loader reads it
    if recorded is not None and recorded[0] == dags_q.source_hash(text):
        return Synced()
    parsed = folder.parse([fileloc])
    out = record_parsed(store, parsed, paused_on_creation=paused_on_creation)
    return _settle(store, folder, Synced(parsed, out.duplicates), out, paused_on_creation, os.path.isfile)


def _settle(
    store: Store,
    folder: DagFolder,
    synced: Synced,
    out: Recorded,
    paused_on_creation: bool,
    allowed: Callable[[str], bool],
) -> Synced:
    """Parse again the files that may now take over a DAG (each at most once), so the
    command that freed it already sees who has it."""
    done: set[str] = {p.filename for p in synced.parsed}
    while todo := [f for f in out.reparse if f not in done and allowed(f)]:
        done.update(todo)
        parsed = folder.parse(todo)
        out = record_parsed(store, parsed, paused_on_creation=paused_on_creation)
        synced.parsed.extend(parsed)
        synced.duplicates.extend(out.duplicates)
    return synced
