"""Clearing task instances so they run again, on one open transaction.

Shared by the user's clear (``control.clear``, the CLI and the API) and the scheduler's
retry of a whole run, which is why it sits in the store and not above the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.core.model import DagSpec
from millstream.core.states import TERMINAL_TASK_STATES, TaskState
from millstream.errors import ConflictError
from millstream.store import results as results_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q


@dataclass(frozen=True)
class Cleared:
    """One task instance a clear selected (or would select, in a dry run)."""

    run_id: str
    task_id: str
    map_index: int
    state: str


def closure(spec: DagSpec, roots: set[str], *, downstream: bool, upstream: bool) -> set[str]:
    out = set(roots)
    if downstream:
        for t in roots:
            out.update(spec.descendants(t))
    if upstream:
        stack = list(roots)
        while stack:
            for u in spec.task(stack.pop()).upstream:
                if u not in out:
                    out.add(u)
                    stack.append(u)
    return out


def with_setups_and_teardowns(spec: DagSpec, tasks: set[str]) -> set[str]:
    """Clearing work clears the setups it runs under and their teardowns: the resource is
    created again for the rerun and cleaned up again after it."""
    out = set(tasks)
    for t in tasks:
        if spec.task(t).is_setup or spec.task(t).is_teardown:
            continue
        for s in closure(spec, {t}, downstream=False, upstream=True):
            if spec.task(s).is_setup:
                out.add(s)
                out.update(d for d in spec.descendants(s) if spec.task(d).is_teardown)
    return out


#: What a clear may reset: finished instances, and those waiting for a retry.
FINISHED_STATES = frozenset({s.value for s in TERMINAL_TASK_STATES} | {TaskState.UP_FOR_RETRY.value})
FAILED_STATES = frozenset({TaskState.FAILED.value, TaskState.UPSTREAM_FAILED.value})


def clear_run(
    conn: Connection,
    run: sa.RowMapping,
    spec: DagSpec,
    roots: set[str],
    *,
    map_index: int | None = None,
    downstream: bool = False,
    upstream: bool = False,
    states: frozenset[str] = FINISHED_STATES,
    dry_run: bool = False,
) -> list[Cleared]:
    """Clear, in one run, the instances of ``roots`` (and their closure) in ``states``."""
    tasks = with_setups_and_teardowns(spec, closure(spec, roots, downstream=downstream, upstream=upstream))
    picked = []
    for r in ti_q.list_for_run(conn, run["id"]):
        if r["task_id"] not in tasks or r["state"] not in states:
            continue
        if map_index is not None and r["task_id"] in roots and r["map_index"] != map_index:
            continue
        picked.append(r)
    if picked and not dry_run:
        _reset(conn, run, spec, picked, whole={t for t in tasks if map_index is None or t not in roots})
    return [Cleared(run["run_id"], r["task_id"], r["map_index"], r["state"]) for r in picked]


def _reset(
    conn: Connection, run: sa.RowMapping, spec: DagSpec, picked: list[sa.RowMapping], whole: set[str]
) -> None:
    by_task: dict[str, list[sa.RowMapping]] = {}
    for r in picked:
        by_task.setdefault(r["task_id"], []).append(r)
    for task_id, rows in by_task.items():
        task = spec.task(task_id)
        sources = {t for src in task.map_sources for t in src.task_ids()} | set(task.aligned)
        if task.is_mapped and task_id in whole and sources & set(by_task):
            # What it maps over runs again, so it expands again; not while some of its
            # instances still run (their reports would be mistaken for the new attempts').
            active = [
                r for r in ti_q.list_for_run(conn, run["id"], task_id) if r["state"] in ("queued", "running")
            ]
            if active:
                raise ConflictError(
                    f"cannot clear {task_id!r} together with what it maps over while {len(active)} of its "
                    "instances are still running; wait for them, or clear without --upstream/--downstream"
                )
            ti_q.collapse_to_placeholder(conn, run["id"], spec, task_id)
            results_q.delete_task(conn, run["id"], task_id)
            continue
        keys = [ti_q.key(run["id"], task_id, r["map_index"]) for r in rows]
        ti_q.clear_many(conn, keys, [r["try_number"] + task.retries for r in rows])
        results_q.delete_many(conn, keys)
    runs_q.mark_cleared(conn, run["id"], now=datetime.now(UTC))
