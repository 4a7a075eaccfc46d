"""``millstream tasks``: task instances of a run: their states, logs, clearing and marking."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click

from millstream import control
from millstream.cli.env import Env, dags_folder_option, parse_date
from millstream.cli.output import console, echo_json, handle_errors, output_option, plain_table, styled
from millstream.errors import NotFoundError
from millstream.store import dags as dags_q


@click.group()
def tasks() -> None:
    """Inspect task instances."""


@tasks.command("states")
@click.argument("dag_id")
@click.argument("run_id")
@output_option
@handle_errors
def tasks_states(dag_id: str, run_id: str, output: str) -> None:
    """Every task instance of a run, with its state and why it waits."""
    store = Env(None).store
    run, tis = control.task_instances(store, dag_id, run_id)
    with store.read() as conn:
        spec = dags_q.spec_for_version(conn, run["dag_version_id"])
    if output == "json":
        echo_json(
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "state": run["state"],
                "state_reason": run["state_reason"],
                "task_instances": [
                    {
                        "task_id": t["task_id"],
                        "map_index": t["map_index"],
                        "label": t["label"],
                        "state": t["state"],
                        "try_number": t["try_number"],
                        "reason": t["state_reason"],
                    }
                    for t in tis
                ],
            }
        )
        return
    table = plain_table("task", "map_index", "state", "tries", "reason")
    for t in tis:
        task = spec.task(t["task_id"]) if spec.has_task(t["task_id"]) else None
        role = " (setup)" if task and task.is_setup else " (teardown)" if task and task.is_teardown else ""
        if task and task.display_name:
            role = f" {task.display_name}{role}"
        idx = "" if t["map_index"] < 0 else str(t["map_index"])
        if t["label"]:
            idx += f" {t['label']}"
        table.add_row(
            t["task_id"] + role, idx, styled(t["state"]), str(t["try_number"]), t["state_reason"] or ""
        )
    console.print(table)
    console.print(
        f"Run {run_id}: {styled(run['state'])}" + (f" ({run['state_reason']})" if run["state_reason"] else "")
    )


@tasks.command("logs")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@click.option("--map-index", default=-1, show_default=True)
@click.option("--try", "try_number", type=int, default=None, help="Attempt number (default: the latest).")
@handle_errors
def tasks_logs(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int | None) -> None:
    """Print the log of one attempt of a task instance."""
    from millstream.worker.runner import log_path, read_log

    env = Env(None)
    _, ti = control.find_task_instance(env.store, dag_id, run_id, task_id, map_index)
    latest = ti["try_number"]
    if latest == 0:
        raise NotFoundError(f"task {task_id!r} has not run yet in run {run_id!r} (state {ti['state']})")
    n = try_number or latest
    if not 1 <= n <= latest:
        raise NotFoundError(f"task {task_id!r} has attempts 1..{latest}; there is no attempt {n}")
    path = log_path(env.settings.logs_folder, dag_id, run_id, task_id, map_index, n)
    text = read_log(path)
    if not text:
        raise NotFoundError(f"no log for attempt {n} at {path}")
    click.echo(text, nl=False)


@tasks.command("clear")
@click.argument("dag_id")
@click.option("--run-id", default=None, help="Only this run (default: every run in the date range).")
@click.option("--start-date", default=None, help="Runs with a logical date on or after (ISO 8601).")
@click.option("--end-date", default=None, help="Runs with a logical date on or before (ISO 8601).")
@click.option("--task-regex", "-t", default=None, help="Tasks whose id matches (re.search).")
@click.option("--map-index", type=int, default=None, help="Only this instance of the matched mapped tasks.")
@click.option("--downstream", "-D", is_flag=True, help="Also clear what depends on the matched tasks.")
@click.option("--upstream", "-U", is_flag=True, help="Also clear what the matched tasks depend on.")
@click.option("--only-failed", "-f", is_flag=True, help="Only failed and upstream_failed instances.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def tasks_clear(
    dag_id: str,
    run_id: str | None,
    start_date: str | None,
    end_date: str | None,
    task_regex: str | None,
    map_index: int | None,
    downstream: bool,
    upstream: bool,
    only_failed: bool,
    yes: bool,
) -> None:
    """Run finished task instances again; the run resumes from them."""
    env = Env(None)
    options: dict[str, Any] = dict(
        run_id=run_id,
        start_date=parse_date(start_date, "--start-date"),
        end_date=parse_date(end_date, "--end-date"),
        task_regex=task_regex,
        map_index=map_index,
        downstream=downstream,
        upstream=upstream,
        only_failed=only_failed,
    )
    selected = control.clear(env.store, dag_id, dry_run=True, **options)
    if not selected:
        console.print("Nothing to clear: no finished task instance matches.")
        return
    table = plain_table("run", "task", "map_index", "state")
    for c in selected[:50]:
        table.add_row(c.run_id, c.task_id, "" if c.map_index < 0 else str(c.map_index), styled(c.state))
    console.print(table)
    if len(selected) > 50:
        console.print(f"... and {len(selected) - 50} more")
    if not yes and not click.confirm(f"Clear these {len(selected)} task instance(s)?", default=False):
        console.print("Nothing cleared.")
        return
    done = control.clear(env.store, dag_id, **options)
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Cleared {len(done)} task instance(s).")


def _mark_tasks(
    dag_id: str,
    run_id: str,
    task_id: str,
    state: str,
    map_index: int | None,
    downstream: bool,
    upstream: bool,
) -> None:
    from millstream.core.states import TaskState
    from millstream.scheduler.wakeup import notify

    env = Env(None)
    marked = control.mark_task_instances(
        env.store,
        dag_id,
        run_id,
        task_id,
        TaskState(state),
        map_index=map_index,
        downstream=downstream,
        upstream=upstream,
    )
    notify(env.settings.home)
    console.print(f"Marked {len(marked)} task instance(s) {styled(state)}")


def _mark_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.argument("dag_id"),
            click.argument("run_id"),
            click.argument("task_id"),
            click.option("--map-index", type=int, default=None, help="Only this instance of a mapped task."),
            click.option("--downstream", "-D", is_flag=True, help="Also what depends on it."),
            click.option("--upstream", "-U", is_flag=True, help="Also what it depends on."),
        ]
    ):
        fn = option(fn)
    return fn


@tasks.command("mark-success")
@_mark_options
@handle_errors
def tasks_mark_success(
    dag_id: str, run_id: str, task_id: str, map_index: int | None, downstream: bool, upstream: bool
) -> None:
    """Mark a task's instances successful by hand; the run carries on."""
    _mark_tasks(dag_id, run_id, task_id, "success", map_index, downstream, upstream)


@tasks.command("mark-failed")
@_mark_options
@handle_errors
def tasks_mark_failed(
    dag_id: str, run_id: str, task_id: str, map_index: int | None, downstream: bool, upstream: bool
) -> None:
    """Mark a task's instances failed by hand; the run carries on."""
    _mark_tasks(dag_id, run_id, task_id, "failed", map_index, downstream, upstream)


@tasks.command("render")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("date", required=False, metavar="[LOGICAL_DATE]")
@click.option("--run-id", default=None, help="Show this run's attempt (default: the run of --logical-date).")
@click.option(
    "--logical-date", default=None, help="The run with this logical date, or render for it (ISO 8601)."
)
@click.option("--map-index", default=-1, show_default=True)
@click.option("--try", "try_number", type=int, default=None, help="Attempt number (default: the latest).")
@click.option("--now", "fresh", is_flag=True, help="Render from the DAG file now, even if an attempt ran.")
@dags_folder_option
@output_option
@handle_errors
def tasks_render(
    dag_id: str,
    task_id: str,
    date: str | None,
    run_id: str | None,
    logical_date: str | None,
    map_index: int,
    try_number: int | None,
    fresh: bool,
    dags_folder: str | None,
    output: str,
) -> None:
    """A task's template fields as rendered, secrets masked.

    What an attempt that ran rendered (kept with the attempt), or else rendered now from
    the DAG file for the run's (or the logical date's) context, as Airflow's
    ``tasks render`` does. Without --run-id or --logical-date: the newest run. The
    logical date may also come third, as ``airflow tasks render DAG TASK DATE`` takes it.
    """
    if date is not None and logical_date is not None and date != logical_date:
        raise click.UsageError(f"two logical dates given: {date!r} and --logical-date {logical_date!r}")
    logical_date = logical_date or date
    from millstream.sdk.loader import load_file
    from millstream.store import rendered as rendered_q
    from millstream.store import runs as runs_q
    from millstream.worker.preview import render_task

    env = Env(dags_folder)
    env.sync_dag(dag_id)
    when = parse_date(logical_date, "--logical-date")
    with env.store.read() as conn:
        fileloc = dags_q.get_dag(conn, dag_id)["fileloc"]
        if run_id is not None:
            run = runs_q.get_run(conn, dag_id, run_id)
        elif when is not None:
            found = runs_q.runs_between(conn, dag_id, when, when)
            run = found[0] if found else None
        else:
            newest = runs_q.list_runs(conn, dag_id, limit=1)
            if not newest:
                raise click.ClickException(
                    f"DAG {dag_id!r} has no runs yet: give --logical-date to render for one"
                )
            run = newest[0]
        stored = None
        if run is not None and not fresh:
            stored = rendered_q.get(conn, run["id"], task_id, map_index, try_number)
    if stored is not None:
        shown, fields = stored
        where = f"attempt {shown} of run {run['run_id']}, as it ran"
    else:
        if try_number is not None and not fresh:
            raise NotFoundError(f"attempt {try_number} of task {task_id!r} kept no rendered fields")
        loaded = load_file(fileloc)
        if dag_id not in loaded.dags:
            err = loaded.error
            raise click.ClickException(f"{fileloc} does not load: {err.message if err else 'no such DAG'}")
        fields = render_task(
            loaded.dags[dag_id], task_id, env.store, logical_date=when, map_index=map_index, run=run
        )
        where = f"rendered now from {os.path.relpath(fileloc)}" + (
            f" for run {run['run_id']}" if run is not None else f" for logical date {when.isoformat()}"
        )
    if output == "json":
        echo_json(
            {"dag_id": dag_id, "task_id": task_id, "map_index": map_index, "source": where, "fields": fields}
        )
        return
    click.echo(f"# {dag_id}.{task_id}{f'[{map_index}]' if map_index >= 0 else ''}: {where}")
    for name, value in fields.items():
        click.echo(f"# {'-' * 58}\n# property: {name}\n# {'-' * 58}")
        click.echo(value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True))
