"""``millstream.load_dags``: what users call in their own tests to check their DAG files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from millstream.sdk import engine
from millstream.sdk.loader import ImportErrorInfo, dag_files, load_file

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG


@dataclass
class LoadResult:
    """DAGs by id, and import errors (each with file and line)."""

    dags: dict[str, DAG] = field(default_factory=dict)
    errors: list[ImportErrorInfo] = field(default_factory=list)

    def __iter__(self):  # type: ignore[no-untyped-def]
        # Allows ``dags, errors = load_dags(path)``.
        return iter((self.dags, self.errors))


def load_dags(path: str | os.PathLike[str], *, timeout: float = 30.0) -> LoadResult:
    """Parse a DAG file or folder exactly as the scheduler does.

    Each file is first imported in a child process under ``timeout`` (so a file that
    hangs is reported, not waited on forever), then the files that imported cleanly are
    imported here to return live DAG objects (``dag.test()`` works on them).
    """
    files = dag_files(path)
    if not files and not os.path.exists(path):
        raise FileNotFoundError(f"no DAG file or folder at {path}")
    out = LoadResult()
    for parsed in engine.file_parser()(files, timeout):
        if parsed.error is not None:
            out.errors.append(parsed.error)
            continue
        result = load_file(parsed.filename)
        if result.error is not None:
            out.errors.append(result.error)
            continue
        for dag_id, d in result.dags.items():
            if dag_id in out.dags:
                out.errors.append(
                    ImportErrorInfo(
                        parsed.filename,
                        d.lineno,
                        f"DAG id {dag_id!r} is also defined in {out.dags[dag_id].filename}",
                    )
                )
                continue
            out.dags[dag_id] = d
    out.errors.sort(key=lambda e: e.filename)
    return out
