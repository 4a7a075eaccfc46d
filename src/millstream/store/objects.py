"""The object store for results too large for the database (any fsspec URL).

A worker writes a large result here and reports only its URL; readers fetch it when the
value is used. The paths carry the try number, so an attempt given up (and its late
write) never overwrites the object a newer attempt's reference points to.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import fsspec

log = logging.getLogger(__name__)


def result_url(
    base: str, dag_id: str, run_pk: int, task_id: str, map_index: int, try_number: int, key: str
) -> str:
    """Keyed by the run's primary key (run ids are free text) and with every user-chosen
    part percent-encoded, so no two results share an object and none leaves ``base``."""
    parts = [
        quote(dag_id, safe=""),
        f"run{run_pk}",
        quote(task_id, safe=""),
        str(map_index),
        f"try{try_number}",
    ]
    return f"{base.rstrip('/')}/{'/'.join(parts)}/{quote(key, safe='')}.json"


def log_url(base: str, dag_id: str, run_pk: int, task_id: str, map_index: int, try_number: int) -> str:
    """Where a remote worker leaves the log of an attempt once it has ended, so that the
    API (on another host) can show it. Keyed like results: by the run's primary key, every
    user-chosen part in a named segment ("dag=..", never a bare ".."), so no two logs share
    an object and none leaves ``base``."""
    parts = [
        f"dag={quote(dag_id, safe='')}",
        f"run{run_pk}",
        f"task={quote(task_id, safe='')}",
        str(map_index),
    ]
    return f"{base.rstrip('/')}/logs/{'/'.join(parts)}/try{try_number}.log"


def copy_file(path: str, url: str) -> None:
    import shutil

    with open(path, "rb") as src, fsspec.open(url, "wb", auto_mkdir=True) as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)


def open_bytes(url: str) -> Any:
    """The object opened for reading (seekable), or None when there is none. A store that
    cannot be reached is logged and counts as none: a log view must not fail for it."""
    try:
        return fsspec.open(url, "rb").open()
    except FileNotFoundError:
        return None
    except Exception:
        log.warning("cannot read %s", url, exc_info=True)
        return None


def write(url: str, text: str) -> None:
    with fsspec.open(url, "w", encoding="utf-8", auto_mkdir=True) as f:
        f.write(text)


def read(url: str) -> str:
    with fsspec.open(url, "r", encoding="utf-8") as f:
        return str(f.read())
