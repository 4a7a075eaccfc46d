"""The operations users invoke — trigger, pause, inspect — shared by the CLI and the API."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.core.model import DagSpec
from millstream.core.states import TERMINAL_TASK_STATES, RunState, TaskState
from millstream.core.timetables import from_spec, parse_dates, runs_between
from millstream.errors import ConflictError, NotFoundError, ParamValidationError
from millstream.sdk.params import resolve_params
from millstream.store import Store
from millstream.store import assets as assets_q
from millstream.store import backfills as backfills_q
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.store.clearing import FAILED_STATES, FINISHED_STATES, Cleared, clear_run, closure
from millstream.store.manual import create_manual_run


def parse_conf(text: str | None, what: str = "--conf") -> dict[str, Any]:
    """``--conf`` must be a JSON object; say so clearly if it is not."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParamValidationError(f"{what} is not valid JSON: {e.msg} at position {e.pos}") from None
    if not isinstance(value, dict):
        raise ParamValidationError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def trigger(
    store: Store,
    dag_id: str,
    *,
    conf: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    logical_date: datetime | None = None,
    now: datetime | None = None,
    run_after: datetime | None = None,
    interval: tuple[datetime, datetime] | None = None,
    without_logical_date: bool = False,
) -> str:
    """Create a manual run (queued); the scheduler starts it. Returns its run_id.

    Params are checked here, so a bad conf is an error for the person triggering, not a
    failed run later. ``without_logical_date``: a run with no logical date (Airflow 3's
    API allows one); ``interval`` and ``run_after`` as Airflow's trigger takes them.
    """
    now = now or datetime.now(UTC)
    if run_id is not None and (not run_id.strip() or "/" in run_id or any(ord(c) < 32 for c in run_id)):
        raise ParamValidationError(
            f"run id {run_id!r} cannot be used: it must be non-blank, without '/' or control characters"
        )
    if logical_date is not None and logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=UTC)  # naive means UTC, as for start_date
    run_id = run_id or f"manual__{(run_after or now).isoformat()}"
    with store.begin() as conn:
        create_manual_run(
            conn,
            dag_id,
            run_id=run_id,
            conf=conf,
            logical_date=logical_date,
            now=now,
            run_after=run_after,
            interval=interval,
            without_logical_date=without_logical_date,
        )
    return run_id


def emit_asset_event(
    store: Store, name: str, *, extra: Mapping[str, Any] | None = None, now: datetime | None = None
) -> int:
    """Record an event for a known asset from outside (CLI, API): it queues runs of the
    DAGs scheduled on it exactly as a task's success would. Returns the event id."""
    if extra is not None and not isinstance(extra, Mapping):
        raise ParamValidationError(f"extra must be a JSON object, got {type(extra).__name__}")
    try:
        json.dumps(dict(extra or {}), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ParamValidationError(f"extra must be plain JSON: {e}") from None
    with store.begin() as conn:
        row = assets_q.get_asset(conn, name)
        return assets_q.record_event(
            conn, asset_name=row["name"], now=now or datetime.now(UTC), extra=extra, source="external"
        )


def parse_extra(text: str | None) -> dict[str, Any]:
    """``--extra`` must be a JSON object."""
    return parse_conf(text, what="--extra")


def set_paused(store: Store, dag_id: str, paused: bool) -> None:
    with store.begin() as conn:
        dags_q.set_paused(conn, dag_id, paused)


def task_instances(store: Store, dag_id: str, run_id: str) -> tuple[sa.RowMapping, list[sa.RowMapping]]:
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        run = runs_q.get_run(conn, dag_id, run_id)
        return run, ti_q.list_for_run(conn, run["id"])


def find_task_instance(
    store: Store, dag_id: str, run_id: str, task_id: str, map_index: int
) -> tuple[sa.RowMapping, sa.RowMapping]:
    """One instance, looked up by key (a run of 10 000 mapped instances is not read for it);
    when it does not exist, the error says which tasks or map indexes do."""
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        run = runs_q.get_run(conn, dag_id, run_id)
        found = ti_q.find(conn, run["id"], task_id, map_index)
        if found is not None:
            return run, found
        indexes = ti_q.map_indexes(conn, run["id"], task_id)
        if indexes is None:
            known = ti_q.task_ids(conn, run["id"])
            raise NotFoundError(
                f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}; its tasks are {known}"
            )
    low, high = indexes
    hint = f"{max(low, 0)}..{high}" if high >= 0 else "-1 (not mapped)"
    raise NotFoundError(f"task {task_id!r} has no map index {map_index}; valid: {hint}")


def clear(
    store: Store,
    dag_id: str,
    *,
    run_id: str | None = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    task_regex: str | None = None,
    map_index: int | None = None,
    downstream: bool = False,
    upstream: bool = False,
    only_failed: bool = False,
    dry_run: bool = False,
) -> list[Cleared]:
    """Reset finished task instances so the scheduler runs them again.

    Instances still queued or running are left alone. The run (re)starts from the
    cleared instances; everything else keeps its state and results. A mapped task
    cleared together with what it maps over expands afresh (the list may have changed).
    """
    try:
        pattern = re.compile(task_regex) if task_regex else None
    except re.error as e:
        raise ParamValidationError(
            f"--task-regex {task_regex!r} is not a valid regular expression: {e}"
        ) from None
    selected: list[Cleared] = []
    with store.begin() as conn:
        dags_q.get_dag(conn, dag_id)
        if run_id is not None:
            runs = [runs_q.get_run(conn, dag_id, run_id)]
        else:
            runs = [
                r
                for r in runs_q.list_runs(conn, dag_id, limit=1_000_000)
                if (start_date is None or (r["logical_date"] and r["logical_date"] >= start_date))
                and (end_date is None or (r["logical_date"] and r["logical_date"] <= end_date))
            ]
        for run in runs:
            spec = dags_q.spec_for_version(conn, run["dag_version_id"])
            roots = {t for t in spec.task_ids if pattern is None or pattern.search(t)}
            selected += clear_run(
                conn,
                run,
                spec,
                roots,
                map_index=map_index,
                downstream=downstream,
                upstream=upstream,
                states=FAILED_STATES if only_failed else FINISHED_STATES,
                dry_run=dry_run,
            )
    return selected


def mark_run(store: Store, dag_id: str, run_id: str, state: RunState) -> int:
    """Mark a run success or failed by hand; returns how many instances were changed.

    Unfinished work is set to the marked state (when marking failed: running work fails,
    work not started is skipped). Teardowns still run, as the resources they clean up may
    exist: the run ends in the marked state once they are done. The scheduler stops the
    attempts that were running (as Airflow does); one that ends before it could is ignored.
    """
    if state not in (RunState.SUCCESS, RunState.FAILED):
        raise ParamValidationError(f"a run can be marked success or failed, not {state}")
    with store.begin() as conn:
        run = runs_q.get_run(conn, dag_id, run_id)
        spec = dags_q.spec_for_version(conn, run["dag_version_id"])
        if run["state"] in (RunState.SUCCESS.value, RunState.FAILED.value):
            runs_q.set_state(conn, run["id"], state, reason=f"marked {state} by a user")
            return 0
        changed = 0
        teardown_pending = False
        for r in ti_q.list_for_run(conn, run["id"]):
            task = spec.task(r["task_id"]) if spec.has_task(r["task_id"]) else None
            if TaskState(r["state"]) in TERMINAL_TASK_STATES:
                continue
            if task is not None and task.is_teardown:
                teardown_pending = True
                continue
            if state is RunState.SUCCESS:
                new = "success"
            else:
                new = "failed" if r["state"] in ("running", "queued") else "skipped"
            ti_q.set_states(
                conn, run["id"], r["task_id"], [r["map_index"]], TaskState(new), f"marked {state} by a user"
            )
            changed += 1
        runs_q.mark(conn, run["id"], state, finished=not teardown_pending)
        return changed


#: Runs that may be deleted: not while running (its scheduler and workers still write to it).
DELETABLE_RUN_STATES = frozenset({RunState.QUEUED.value, RunState.SUCCESS.value, RunState.FAILED.value})


def queue_run(store: Store, dag_id: str, run_id: str) -> None:
    """Put a finished run back in line, its instances as they are (Airflow's "set the run to
    queued"): the scheduler continues from them, so work cleared since runs again and a run
    whose work is all done ends again at once. A queued run stays queued; a running one is
    refused, as its scheduler is planning it (mark it, or clear its instances)."""
    with store.begin() as conn:
        run = runs_q.get_run(conn, dag_id, run_id)
        if run["state"] == RunState.RUNNING.value:
            raise ConflictError(
                f"run {run_id!r} of DAG {dag_id!r} is running; it can be queued again once it has "
                "finished (mark it success or failed, or clear its task instances)"
            )
        if run["state"] != RunState.QUEUED.value:
            runs_q.queue_again(conn, run["id"], reason="queued again by a user")


def delete_run(store: Store, dag_id: str, run_id: str) -> str | None:
    """Delete a run with its task instances and results; None when deleted, else the state
    that prevents it (a running run is not deleted)."""
    with store.begin() as conn:
        run = runs_q.get_run(conn, dag_id, run_id)
        if runs_q.delete_run(conn, run["id"], DELETABLE_RUN_STATES):
            return None
        return str(runs_q.get_run(conn, dag_id, run_id)["state"])


def mark_task_instances(
    store: Store,
    dag_id: str,
    run_id: str,
    task_id: str,
    state: TaskState,
    *,
    map_index: int | None = None,
    downstream: bool = False,
    upstream: bool = False,
    dry_run: bool = False,
) -> list[Cleared]:
    """Set task instances to success or failed by hand; the run carries on from there.

    Queued or running instances are stopped by the scheduler that owns the run; what they
    report afterwards is ignored. A finished run is reopened so that its state is decided again.
    With ``dry_run``, says which instances would change and changes nothing.
    """
    if state not in (TaskState.SUCCESS, TaskState.FAILED):
        raise ParamValidationError(f"task instances can be marked success or failed, not {state}")
    marked: list[Cleared] = []
    with store.begin() as conn:
        run = runs_q.get_run(conn, dag_id, run_id)
        spec = dags_q.spec_for_version(conn, run["dag_version_id"])
        if not spec.has_task(task_id):
            raise NotFoundError(f"run {run_id!r} of DAG {dag_id!r} has no task {task_id!r}")
        tasks = closure(spec, {task_id}, downstream=downstream, upstream=upstream)
        for r in ti_q.list_for_run(conn, run["id"]):
            if r["task_id"] not in tasks or r["state"] == state.value:
                continue
            if map_index is not None and r["task_id"] == task_id and r["map_index"] != map_index:
                continue
            if not dry_run:
                ti_q.set_states(
                    conn, run["id"], r["task_id"], [r["map_index"]], state, f"marked {state} by a user"
                )
            marked.append(Cleared(run_id, r["task_id"], r["map_index"], r["state"]))
        if marked and not dry_run:
            runs_q.mark_cleared(conn, run["id"])  # reopen, and tell schedulers to reload it
    return marked


# -- backfills -----------------------------------------------------------------------------------

REPROCESS = ("none", "failed", "completed")


#: More runs than this in one backfill is almost always a typo in a date; split real ones.
MAX_BACKFILL_RUNS = 20_000


@dataclass(frozen=True)
class BackfillItem:
    """One interval of a backfill and what the backfill does with it."""

    logical_date: datetime
    interval_start: datetime
    interval_end: datetime
    action: str  # create | rerun | skip
    existing_run_id: str | None = None
    existing_state: str | None = None


def plan_backfill(
    conn: Connection,
    dag_id: str,
    from_date: datetime,
    to_date: datetime,
    reprocess: str,
    now: datetime | None = None,
) -> tuple[int, DagSpec, list[BackfillItem]]:
    """What a backfill would do: every interval, and the fate of runs that already exist."""
    version_id, spec = dags_q.latest_spec(conn, dag_id)
    if reprocess not in REPROCESS:
        raise ParamValidationError(
            f"--reprocess-behavior must be one of {', '.join(REPROCESS)}, got {reprocess!r}"
        )
    if from_date > to_date:
        raise ParamValidationError(
            f"--from-date {from_date.isoformat()} is after --to-date {to_date.isoformat()}"
        )
    if from_date >= (now or datetime.now(UTC)):  # as Airflow 3: a backfill is for the past
        raise ParamValidationError(
            f"--from-date {from_date.isoformat()} is in the future; a backfill covers past intervals "
            "(the DAG's schedule runs the future ones)"
        )
    timetable = from_spec(spec.timetable)
    if not timetable.periodic:
        raise ParamValidationError(
            f"DAG {dag_id!r} has no time schedule ({timetable.summary}); a backfill needs a cron, preset or "
            "timedelta schedule"
        )
    start, end = parse_dates(spec.start_date, spec.end_date)
    if start is not None and from_date < start:
        raise ParamValidationError(
            f"--from-date {from_date.isoformat()} is before the DAG's start_date {start.isoformat()}"
        )
    if end is not None and to_date > end:
        raise ParamValidationError(
            f"--to-date {to_date.isoformat()} is after the DAG's end_date {end.isoformat()}"
        )
    try:
        infos = runs_between(timetable, from_date, to_date, limit=MAX_BACKFILL_RUNS + 1)
    except (OverflowError, ValueError) as e:
        raise ParamValidationError(f"dates out of range for DAG {dag_id!r}'s schedule: {e}") from None
    if len(infos) > MAX_BACKFILL_RUNS:
        raise ParamValidationError(
            f"a backfill of {dag_id!r} from {from_date.isoformat()} to {to_date.isoformat()} would create more "
            f"than {MAX_BACKFILL_RUNS} runs; split the range into several backfills"
        )
    if not infos:
        raise ParamValidationError(
            f"DAG {dag_id!r} has no run between {from_date.isoformat()} and {to_date.isoformat()}"
        )
    existing = {r["logical_date"]: r for r in runs_q.runs_between(conn, dag_id, from_date, to_date)}
    items = []
    for info in infos:
        run = existing.get(info.logical_date)
        if run is None:
            action = "create"
        elif run["state"] in ("queued", "running"):
            action = "skip"
        elif reprocess == "completed" or (reprocess == "failed" and run["state"] == "failed"):
            action = "rerun"
        else:
            action = "skip"
        items.append(
            BackfillItem(
                info.logical_date,
                info.interval_start,
                info.interval_end,
                action,
                run["run_id"] if run else None,
                run["state"] if run else None,
            )
        )
    return version_id, spec, items


def create_backfill(
    store: Store,
    dag_id: str,
    from_date: datetime,
    to_date: datetime,
    *,
    reprocess: str = "none",
    max_active_runs: int = 10,
    run_backwards: bool = False,
    conf: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> tuple[int | None, list[BackfillItem]]:
    """Create a backfill the scheduler works through (or, with ``dry_run``, only plan it).

    Runs that do not exist are created; existing ones follow ``reprocess``: ``none`` leaves
    them alone, ``failed`` reruns the failed ones, ``completed`` reruns every finished one.
    Runs start oldest first (newest first with ``run_backwards``), at most
    ``max_active_runs`` at a time, next to (not instead of) the DAG's scheduled runs.
    """
    now = now or datetime.now(UTC)
    from_date, to_date = _utc(from_date), _utc(to_date)
    if max_active_runs < 1:
        raise ParamValidationError(f"--max-active-runs must be 1 or more, got {max_active_runs}")
    with store.begin() as conn:
        version_id, spec, items = plan_backfill(conn, dag_id, from_date, to_date, reprocess, now)
        resolve_params(spec.params, conf)
        if dry_run:
            return None, items
        backfill_id = backfills_q.create(
            conn,
            dag_id=dag_id,
            from_date=from_date,
            to_date=to_date,
            reprocess_behavior=reprocess,
            max_active_runs=max_active_runs,
            run_backwards=run_backwards,
            conf=dict(conf or {}),
            state="running",
            created_at=now,
        )
        ordered = list(reversed(items)) if run_backwards else items
        for order, item in enumerate(ordered):
            if item.action == "create":
                pk = runs_q.create_run(
                    conn,
                    dag_id=dag_id,
                    run_id=f"backfill__{item.logical_date.isoformat()}",
                    version_id=version_id,
                    run_type="backfill",
                    logical_date=item.logical_date,
                    interval=(item.interval_start, item.interval_end),
                    run_after=now,
                    conf=dict(conf or {}),
                    now=now,
                )
            elif item.action == "rerun":
                run = runs_q.get_run(conn, dag_id, item.existing_run_id or "")
                pk = run["id"]
                run_spec = dags_q.spec_for_version(conn, run["dag_version_id"])
                clear_run(conn, run, run_spec, set(run_spec.task_ids))
                runs_q.requeue(conn, pk)
            else:
                continue
            runs_q.assign_backfill(conn, pk, backfill_id, order)
    return backfill_id, items


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_backfill_state(store: Store, backfill_id: int, action: str, now: datetime | None = None) -> str:
    """pause | resume | cancel. Returns the new state."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        b = backfills_q.get(conn, backfill_id)
        state = b["state"]
        if state in ("completed", "cancelled"):
            done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}.get(action, action)
            raise ConflictError(
                f"backfill {backfill_id} is {state}; it cannot be {done} (only running or paused backfills can)"
            )
        if action == "pause":
            new = "paused"
        elif action == "resume":
            new = "running"
        elif action == "cancel":
            new = "cancelled"
            backfills_q.fail_queued(conn, backfill_id, "backfill cancelled", now)
        else:
            raise ParamValidationError(f"unknown backfill action {action!r}")
        backfills_q.set_state(conn, backfill_id, new, completed_at=now if new == "cancelled" else None)
        return new
