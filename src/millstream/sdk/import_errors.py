"""A DAG file that failed to import, pinned to a file and line.

A leaf module of its own so that the engine seam (:mod:`millstream.sdk.engine`) can name
it without importing the loader, which reaches the DAG module and would close a cycle.
``millstream.sdk.loader`` re-exports it under its old name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImportErrorInfo:
    filename: str
    lineno: int | None
    message: str
    stacktrace: str = ""

    def __str__(self) -> str:
        where = f"{self.filename}:{self.lineno}" if self.lineno else self.filename
        return f"{where}: {self.message}"
