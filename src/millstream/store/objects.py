"""The object store for results too large for the database (any fsspec URL).

A worker writes a large result here and reports only its URL; readers fetch it when the
value is used. The paths carry the try number, so an attempt given up (and its late
write) never overwrites the object a newer attempt's reference points to.
"""

from __future__ import annotations

from urllib.parse import quote

import fsspec


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


def log_url(base: str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """Where a remote worker leaves the log of an attempt once it has ended, so that the
    API (on another host) can show it."""
    parts = [quote(dag_id, safe=""), quote(run_id, safe=""), quote(task_id, safe=""), str(map_index)]
    return f"{base.rstrip('/')}/logs/{'/'.join(parts)}/try{try_number}.log"


def copy_file(path: str, url: str) -> None:
    with open(path, "rb") as src, fsspec.open(url, "wb", auto_mkdir=True) as dst:
        dst.write(src.read())


def read_bytes(url: str) -> bytes | None:
    """The object's bytes, or None when there is no such object."""
    try:
        with fsspec.open(url, "rb") as f:
            return bytes(f.read())
    except FileNotFoundError:
        return None


def write(url: str, text: str) -> None:
    with fsspec.open(url, "w", encoding="utf-8", auto_mkdir=True) as f:
        f.write(text)


def read(url: str) -> str:
    with fsspec.open(url, "r", encoding="utf-8") as f:
        return str(f.read())
