"""Importing a DAG file and collecting its DAGs, with errors pinned to a file and line.

The scheduler's parsing child, the workers and :func:`millstream.load_dags` all use
this one function, so a DAG that imports for one of them imports for all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from millstream.errors import DagDefinitionError
from millstream.sdk.import_errors import ImportErrorInfo as ImportErrorInfo  # re-exported: its old home

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG


@dataclass
class FileResult:
    filename: str
    dags: dict[str, DAG] = field(default_factory=dict)
    error: ImportErrorInfo | None = None
    source: str | None = None  # exactly the text that was executed


def module_name(path: str) -> str:
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    return f"millstream_dag_{Path(path).stem}_{digest}"


def _line_in(tb: traceback.StackSummary, path: str) -> int | None:
    lines = [f.lineno for f in tb if os.path.abspath(f.filename) == path]
    return lines[-1] if lines else None


def load_file(
    path: str | os.PathLike[str], *, import_folder: str | None = None, as_path: str | None = None
) -> FileResult:
    """Import ``path`` as a fresh module and return the DAGs it created (or its error).

    The file is read once and exactly that text is executed (``result.source``), so the
    version recorded for a DAG is the code that produced it. ``import_folder`` is where
    helper modules are imported from (default: the file's own folder). ``as_path`` runs
    the text as if it were that file (``__file__``, tracebacks): a pinned copy of a DAG
    file still finds the SQL files next to the original.
    """
    from millstream.sdk import airflow_imports
    from millstream.sdk.dag import collect_dags

    airflow_imports.install_if_wanted()
    path = os.path.abspath(path)
    result = FileResult(path)
    name = module_name(path)
    sys.modules.pop(name, None)
    folder = import_folder or os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # helpers next to DAG files import as in Airflow
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path} as a Python module")
        source = Path(path).read_bytes()
        result.source = source.decode("utf-8", "replace")
        module = importlib.util.module_from_spec(spec)
        if as_path is not None:
            module.__file__ = as_path
        sys.modules[name] = module
        with collect_dags() as found:
            exec(compile(source, as_path or path, "exec"), module.__dict__)
    except SyntaxError as e:
        sys.modules.pop(name, None)
        result.error = ImportErrorInfo(path, e.lineno, f"SyntaxError: {e.msg}", traceback.format_exc())
        return result
    except DagDefinitionError as e:
        sys.modules.pop(name, None)
        line = e.lineno if e.filename and os.path.abspath(e.filename) == path else None
        if line is None:
            line = _line_in(traceback.extract_tb(e.__traceback__), path)
        result.error = ImportErrorInfo(path, line, f"{type(e).__name__}: {e.message}", traceback.format_exc())
        return result
    except BaseException as e:
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        line = _line_in(traceback.extract_tb(e.__traceback__), path)
        result.error = ImportErrorInfo(path, line, f"{type(e).__name__}: {e}", traceback.format_exc())
        return result
    seen: dict[str, DAG] = {}
    for d in found:
        if d.dag_id in seen and seen[d.dag_id] is not d:
            result.error = ImportErrorInfo(
                path, d.lineno, f"DAG id {d.dag_id!r} is defined twice in this file"
            )
            return result
        seen[d.dag_id] = d
    result.dags = seen
    return result


def dag_files(folder: str | os.PathLike[str]) -> list[str]:
    """The ``*.py`` files under ``folder`` (or the file itself), skipping hidden/private."""
    p = Path(folder)
    if p.is_file():
        return [str(p.resolve())]
    if not p.is_dir():
        return []
    out = []
    for f in sorted(p.rglob("*.py")):
        rel = f.relative_to(p).parts
        if any(part.startswith((".", "_")) for part in rel):
            continue
        out.append(str(f.resolve()))
    return out
