"""``millstream tasks test | list | state``: Airflow's everyday task commands, with its
names and arguments.

``tasks test`` runs one attempt of one task instance in this process with the worker's
own code, and records nothing: the store is opened read-only (an upstream result is
read from the run when the run exists, and is None otherwise, as in Airflow) and the log
goes to a temporary file that is echoed and then removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import click
from sqlalchemy import Connection

from millstream.cli.env import Env, dags_folder_option
from millstream.cli.lookup import bundle_option, dag_spec, find_run, parse_logical_date
from millstream.cli.output import console, echo_json, handle_errors, output_option, styled
from millstream.cli.tasks import tasks
from millstream.errors import MillstreamError, NotFoundError, ParamValidationError
from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import task_instances as ti_q

if TYPE_CHECKING:  # the SDK is imported when a DAG is loaded, not at start-up
    from millstream.sdk.dag import DAG


class ReadOnlyStore:
    """The configured store for reading only: ``tasks test`` records nothing, so a task
    that would write to the store (a TriggerDagRunOperator) fails with this message."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._store.read() as conn:
            yield conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        raise MillstreamError(
            "`tasks test` records nothing in the store, and this task writes to it; "
            "run the whole DAG with `millstream dags test` to see what it does"
        )
        yield  # pragma: no cover


def _json_option(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not JSON ({e.msg}); give a JSON object", param_hint=option) from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"must be a JSON object, got {type(value).__name__}", param_hint=option)
    return value


def load_dag(env: Env, dag_id: str) -> DAG:
    """The DAG's code: from its own file when the store knows it, else found in the folder."""
    from millstream.sdk.loader import dag_files, load_file

    with env.store.read() as conn:
        try:
            fileloc = dags_q.get_dag(conn, dag_id)["fileloc"]
        except NotFoundError:
            fileloc = None
    if fileloc and os.path.exists(fileloc):
        loaded = load_file(fileloc)
        if dag_id in loaded.dags:
            return loaded.dags[dag_id]
        if loaded.error is not None:
            where = f"{fileloc}:{loaded.error.lineno}" if loaded.error.lineno else fileloc
            raise MillstreamError(f"DAG {dag_id!r} does not load: {where}: {loaded.error.message}")
    errors = 0
    for f in dag_files(env.settings.dags_folder):
        loaded = load_file(f)
        errors += loaded.error is not None
        if dag_id in loaded.dags:
            return loaded.dags[dag_id]
    hint = f" ({errors} file(s) failed to import: `millstream dags list-import-errors`)" if errors else ""
    raise NotFoundError(f"no DAG {dag_id!r} in {env.settings.dags_folder}{hint}")


@tasks.command("test")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("logical_date_or_run_id", required=False)
@bundle_option
@click.option(
    "--env-vars", default=None, help="Environment variables for parsing and running, as a JSON object."
)
@click.option("--map-index", type=int, default=-1, show_default=True, help="Mapped task index.")
@click.option("--post-mortem", "-m", is_flag=True, help="Not supported here (see the message).")
@click.option("--task-params", "-t", default=None, help="A JSON object of params for the task.")
@dags_folder_option
@handle_errors
def tasks_test(
    dag_id: str,
    task_id: str,
    logical_date_or_run_id: str | None,
    env_vars: str | None,
    map_index: int,
    post_mortem: bool,
    task_params: str | None,
    dags_folder: str | None,
) -> None:
    """Run one task instance here, without checking its dependencies or recording anything.

    LOGICAL_DATE_OR_RUN_ID names an existing run (its conf, dates and upstream results
    are used) or a logical date for a run that does not exist (upstream results are
    then None); without it, the run is as if triggered now. Prints the task's log as it
    runs and its result; exits 1 unless the task succeeded or skipped.
    """
    if post_mortem:
        raise click.UsageError(
            "--post-mortem is not supported: the attempt catches the task's exception to report it, "
            "so no debugger can open on it; put breakpoint() in the task and run `millstream tasks test`"
        )
    params = _json_option(task_params, "--task-params")
    os.environ.update({k: str(v) for k, v in _json_option(env_vars, "--env-vars").items()})
    from datetime import UTC, datetime

    from millstream.core.timetables import from_spec
    from millstream.sdk.params import resolve_params
    from millstream.worker.item import WorkItem

    env = Env(dags_folder)
    dag = load_dag(env, dag_id)
    if task_id not in dag.tasks:
        raise NotFoundError(
            f"DAG {dag_id!r} has no task {task_id!r}; `millstream tasks list {dag_id}` lists its tasks"
        )
    task = dag.get_task(task_id)
    if task.is_mapped and map_index < 0:
        raise click.UsageError(f"task {task_id!r} is mapped: give the instance with --map-index N")
    if not task.is_mapped and map_index >= 0:
        raise click.UsageError(f"task {task_id!r} is not mapped: leave out --map-index")
    spec = dag.to_spec()
    run = None
    if logical_date_or_run_id is not None:
        with env.store.read() as conn:
            run = find_run(conn, dag_id, logical_date_or_run_id)
    logs = tempfile.mkdtemp(prefix="millstream-tasks-test-")
    if run is not None:
        conf = dict(run["conf"] or {})
        fields: dict[str, Any] = dict(
            run_pk=run["id"],
            run_id=run["run_id"],
            run_type=run["run_type"],
            logical_date=run["logical_date"],
            data_interval_start=run["data_interval_start"],
            data_interval_end=run["data_interval_end"],
            run_version=run["clear_number"],
        )
    else:
        when = parse_logical_date(logical_date_or_run_id) if logical_date_or_run_id else None
        now = datetime.now(UTC)
        info = from_spec(spec.timetable).manual_info(when or now)
        conf = {}
        fields = dict(
            run_pk=0,  # no run: every upstream result reads as None
            run_id=logical_date_or_run_id
            if logical_date_or_run_id and when is None
            else f"manual__{now.isoformat()}",
            run_type="manual",
            logical_date=when,
            data_interval_start=info.interval_start if when else None,
            data_interval_end=info.interval_end if when else None,
        )
    try:
        item = WorkItem(
            dag_id=dag_id,
            task_id=task_id,
            map_index=map_index,
            try_number=1,
            fileloc=os.path.abspath(dag.filename) if dag.filename else "",
            # -t reaches the task's own Params too, which an attempt reads from the conf.
            conf={**conf, **{k: v for k, v in params.items() if k in (task.config["params"] or {})}},
            params=resolve_params(spec.params, {**conf, **params}),
            log_path=os.path.join(logs, "attempt.log"),
            execution_timeout=spec.task(task_id).execution_timeout,
            **fields,
        )
        result = _run(item, dag, env)
    except ParamValidationError as e:
        raise ParamValidationError(f"{e}; give it with --task-params") from None
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    idx = f"[{map_index}]" if map_index >= 0 else ""
    returned = next((r[1] for r in result.results if r[0] == "return_value"), None)  # JSON text
    returned = "None" if returned == "null" else returned  # as Airflow prints a task's None
    if result.state == "success" and returned is not None:
        click.echo(f"Returned value was: {returned if len(returned) <= 2000 else returned[:2000] + '…'}")
    why = f" ({result.error})" if result.error else ""
    if result.state == "deferred" and result.trigger:
        why = f" (on {result.trigger['classpath']}: `tasks test` runs no triggers)"
    console.print(f"Task {dag_id}.{task_id}{idx}: {styled(result.state)}{why}", soft_wrap=True)
    if result.state not in ("success", "skipped"):
        sys.exit(1)


def _run(item: Any, dag: DAG, env: Env) -> Any:
    """One attempt, its log lines printed as they are written."""
    from millstream.worker import log_echo
    from millstream.worker.results import ResultReader
    from millstream.worker.runner import run_attempt

    out = sys.stdout  # the terminal, captured now: the attempt redirects sys.stdout to its log

    def echo(label: str, line: str) -> None:
        out.write(line + "\n")
        out.flush()

    reader = ResultReader(cast(Store, ReadOnlyStore(env.store)))
    with log_echo.echoing(echo):
        return run_attempt(item, lambda fileloc, dag_id: dag, reader, alarm=True)


@tasks.command("list")
@click.argument("dag_id")
@bundle_option
@dags_folder_option
@output_option
@handle_errors
def tasks_list(dag_id: str, dags_folder: str | None, output: str) -> None:
    """The tasks of DAG_ID, one id a line, sorted (``-o json|yaml``: with their details)."""
    _, spec = dag_spec(Env(dags_folder), dag_id)
    ordered = sorted(spec.tasks, key=lambda t: t.task_id)
    if output == "json":
        echo_json(
            [
                {
                    "task_id": t.task_id,
                    "task_display_name": t.display_name or t.task_id,
                    "operator": t.operator,
                    "group_id": t.group_id,
                    "upstream_task_ids": sorted(t.upstream),
                    "downstream_task_ids": sorted(spec.downstream(t.task_id)),
                    "is_mapped": t.is_mapped,
                    "is_setup": t.is_setup,
                    "is_teardown": t.is_teardown,
                    "trigger_rule": str(t.trigger_rule),
                }
                for t in ordered
            ]
        )
        return
    for t in ordered:
        click.echo(t.task_id)


@tasks.command("state")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("logical_date_or_run_id")
@bundle_option
@click.option("--map-index", type=int, default=-1, show_default=True, help="Mapped task index.")
@handle_errors
def tasks_state(dag_id: str, task_id: str, logical_date_or_run_id: str, map_index: int) -> None:
    """The state of one task instance, as one word (``None`` when it has none yet)."""
    from millstream import control

    store = Env(None).store
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        run = find_run(conn, dag_id, logical_date_or_run_id)
        if run is None:
            raise NotFoundError(
                f"DagRun for {dag_id} with run_id or logical_date of {logical_date_or_run_id!r} not found; "
                f"`millstream dags list-runs {dag_id}` lists the runs"
            )
        ti = ti_q.find(conn, run["id"], task_id, map_index)
    if ti is None:  # the lookup again, for the error that says which tasks or indexes exist
        control.find_task_instance(store, dag_id, run["run_id"], task_id, map_index)
        raise NotFoundError(f"run {run['run_id']!r} has no instance {task_id!r} [{map_index}]")
    click.echo("None" if ti["state"] == "none" else ti["state"])
