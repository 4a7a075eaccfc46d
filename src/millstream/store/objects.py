"""The object store for results too large for the database (any fsspec URL).

A worker writes a large result here and reports only its URL; readers fetch it when the
value is used. The paths carry the try number, so an attempt given up (and its late
write) never overwrites the object a newer attempt's reference points to.
"""

from __future__ import annotations

import fsspec


def result_url(
    base: str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, key: str
) -> str:
    safe_run = run_id.replace(":", "_").replace("+", "_")
    return f"{base.rstrip('/')}/{dag_id}/{safe_run}/{task_id}/{map_index}/try{try_number}/{key}.json"


def write(url: str, text: str) -> None:
    with fsspec.open(url, "w", encoding="utf-8", auto_mkdir=True) as f:
        f.write(text)


def read(url: str) -> str:
    with fsspec.open(url, "r", encoding="utf-8") as f:
        return str(f.read())
