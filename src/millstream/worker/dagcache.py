"""A worker's cache of imported DAG files, refreshed when a file changes on disk."""

from __future__ import annotations

import os

from millstream.errors import NotFoundError
from millstream.sdk.dag import DAG
from millstream.sdk.loader import load_file


class DagCache:
    def __init__(self) -> None:
        self._files: dict[str, tuple[float, dict[str, DAG]]] = {}

    def resolve(self, fileloc: str, dag_id: str) -> DAG:
        mtime = os.stat(fileloc).st_mtime
        cached = self._files.get(fileloc)
        if cached is None or cached[0] != mtime:
            result = load_file(fileloc)
            if result.error is not None:
                raise NotFoundError(f"DAG file failed to import in the worker: {result.error}")
            cached = (mtime, result.dags)
            self._files[fileloc] = cached
        try:
            return cached[1][dag_id]
        except KeyError:
            raise NotFoundError(f"{fileloc} no longer defines DAG {dag_id!r}") from None
