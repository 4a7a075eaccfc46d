"""Which file a dag_id belongs to when several DAG files define it.

The rule, applied wherever parsed files are recorded (the scheduler and every CLI
command go through ``scheduler.dagsync``):

1. The file that holds the dag_id in the store keeps it, as long as it still defines it
   (or failed to import this time: its last good version keeps running). A new file
   never takes over a DAG that is running from another file.
2. Among files new to the dag_id, the first in the DAG folder's order wins: the order
   ``dag_files`` lists files in, which is the order ``load_dags()`` reports duplicates in.
3. Every other file that defines it gets an import error naming both paths; its other
   DAGs load as usual.

When the owner is deleted or stops defining the dag_id, nothing in the other file
changed, so the recorder asks for it to be parsed again (``freed``) and rule 2 hands it
over.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class Duplicate:
    """``filename`` defines ``dag_id``, which ``owner`` keeps."""

    dag_id: str
    filename: str
    owner: str

    @property
    def message(self) -> str:
        return (
            f"DAG id {self.dag_id!r} in {self.filename} is also defined in {self.owner}, "
            f"which keeps it; rename one of them (a dag_id must be unique across DAG files)"
        )


_MESSAGE = re.compile(r"DAG id '([A-Za-z0-9_.\-]+)' in .+? is also defined in ")


def file_order(path: str) -> tuple[str, ...]:
    """Sort key of DAG files: by path component, as ``sorted(Path.rglob(...))`` lists them
    (``a/x.py`` before ``a-b.py``, which a plain string sort would swap)."""
    return PurePath(path).parts


def claim(defined: Mapping[str, Iterable[str]], owners: Mapping[str, str]) -> list[Duplicate]:
    """The dag_ids files may not have.

    ``defined``: each freshly parsed file (that imported) and the dag_ids it defines.
    ``owners``: dag_id -> the file that holds it in the store now.
    """
    wanted = {f: list(ids) for f, ids in defined.items()}
    held = {d: f for d, f in owners.items() if f not in wanted or d in wanted[f]}
    lost = []
    for f in sorted(wanted, key=file_order):
        for dag_id in wanted[f]:
            owner = held.setdefault(dag_id, f)
            if owner != f:
                lost.append(Duplicate(dag_id, f, owner))
    return lost


def message(duplicates: Iterable[Duplicate]) -> str:
    """One file's import error for all the dag_ids it lost."""
    return "\n".join(d.message for d in duplicates)


def duplicated_ids(error_message: str) -> list[str]:
    """The dag_ids an import error says its file lost (none for any other error)."""
    return _MESSAGE.findall(error_message)


def freed(errors: Mapping[str, str], owners: Mapping[str, str]) -> list[str]:
    """Files whose duplicate import error is out of date: a dag_id they lost has no owner
    any more (``owners``: dag_id -> the file that holds it now), so parsing them again
    gives it to them."""
    return sorted(
        (f for f, text in errors.items() if any(d not in owners for d in duplicated_ids(text))),
        key=file_order,
    )
