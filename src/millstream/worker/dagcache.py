"""A worker's cache of imported DAG files, refreshed when a file changes on disk.

A run is pinned to the DAG version it started with, code included: when the file on
disk no longer is the text that version recorded, the worker imports the recorded text
instead (written once under a cache folder and kept warm like any other file).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from millstream.errors import NotFoundError
from millstream.sdk.dag import DAG
from millstream.sdk.loader import load_file
from millstream.store import Store
from millstream.store import dags as dags_q


class DagCache:
    def __init__(self, versions_folder: str | os.PathLike[str] | None = None) -> None:
        self._files: dict[str, tuple[float, dict[str, DAG], str | None]] = {}
        self._sources: dict[int, tuple[str, str] | None] = {}
        self._versions_folder = Path(
            versions_folder or Path(tempfile.gettempdir()) / "millstream-dag-versions"
        )

    def resolve(self, fileloc: str, dag_id: str) -> DAG:
        """The DAG as the file on disk defines it now."""
        return self._load(fileloc, dag_id)[0]

    def resolve_version(self, fileloc: str, dag_id: str, version_id: int, store: Store | None) -> DAG:
        """The DAG as the version ``version_id`` recorded it (the disk file if unchanged)."""
        if not version_id or store is None:
            return self.resolve(fileloc, dag_id)
        if version_id not in self._sources:
            with store.read() as conn:
                self._sources[version_id] = dags_q.version_source(conn, version_id)
        recorded = self._sources[version_id]
        if recorded is None:
            return self.resolve(fileloc, dag_id)
        source_hash, source = recorded
        try:
            dag, disk_hash = self._load(fileloc, dag_id)
            if disk_hash == source_hash:
                return dag
        except (FileNotFoundError, NotFoundError):
            pass  # edited into something else, or gone: the recorded text still runs
        pinned = self._versions_folder / source_hash / Path(fileloc).name
        if not pinned.exists():
            pinned.parent.mkdir(parents=True, exist_ok=True)
            tmp = pinned.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            tmp.replace(pinned)  # atomic: concurrent workers never import half a file
        return self._load(str(pinned), dag_id, as_path=fileloc)[0]

    def _load(self, fileloc: str, dag_id: str, as_path: str | None = None) -> tuple[DAG, str | None]:
        mtime = os.stat(fileloc).st_mtime
        cached = self._files.get(fileloc)
        if cached is None or cached[0] != mtime:
            folder = os.path.dirname(as_path) if as_path else None
            result = load_file(fileloc, import_folder=folder, as_path=as_path)
            if result.error is not None:
                raise NotFoundError(f"DAG file failed to import in the worker: {result.error}")
            digest = hashlib.sha256(result.source.encode()).hexdigest() if result.source is not None else None
            cached = (mtime, result.dags, digest)
            self._files[fileloc] = cached
        try:
            return cached[1][dag_id], cached[2]
        except KeyError:
            raise NotFoundError(f"{fileloc} no longer defines DAG {dag_id!r}") from None
