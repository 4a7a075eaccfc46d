"""``millstream dags test``: one DAG run in this process, with its tasks' logs as they happen.

As Airflow's ``dags test``: the run is recorded in the configured store (so ``tasks
logs``, ``dags list-runs`` and the UI show it afterwards), each task's output streams
as it is written, prefixed with the instance it comes from, and a red run ends with
every failed instance's reason and traceback: the answer to "why", without a second
command. ``--no-save`` keeps it all in memory instead, as ``DAG.test()`` does.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from millstream import control
from millstream.cli.dags import dags
from millstream.cli.env import Env, dags_folder_option, parse_date
from millstream.cli.output import console, err_console, handle_errors, plain_table, styled
from millstream.errors import MillstreamError, NotFoundError
from millstream.settings import Settings


@dags.command("test")
@click.argument("dag_id")
@click.argument("logical_date", required=False)
@dags_folder_option
@click.option("--conf", "-c", default=None, help="Run conf as a JSON object.")
@click.option(
    "--dagfile-path", "-f", default=None, help="The DAG's file: parse only it instead of the whole folder."
)
@click.option(
    "--mark-success-pattern",
    default=None,
    metavar="REGEX",
    help="Don't run tasks whose id fully matches REGEX; mark them successful instead.",
)
@click.option("--no-save", is_flag=True, help="Keep the run in memory only: nothing is recorded.")
@click.option("--quiet", "-q", is_flag=True, help="Only print the summary (and the failures).")
@click.option("--use-executor", is_flag=True, hidden=True)
@click.option("--show-dagrun", is_flag=True, hidden=True)
@click.option("--save-dagrun", default=None, hidden=True)
@click.option("--imgcat-dagrun", is_flag=True, hidden=True)
@handle_errors
def dags_test(
    dag_id: str,
    logical_date: str | None,
    dags_folder: str | None,
    conf: str | None,
    dagfile_path: str | None,
    mark_success_pattern: str | None,
    no_save: bool,
    quiet: bool,
    use_executor: bool,
    show_dagrun: bool,
    save_dagrun: str | None,
    imgcat_dagrun: bool,
) -> None:
    """Run one DAG run of DAG_ID in this process, streaming each task's log, and record it.

    LOGICAL_DATE (ISO 8601, default: now) is the run's logical date.
    """
    from millstream.testing import run_dag_inline

    _refuse_unsupported(use_executor, show_dagrun, save_dagrun, imgcat_dagrun)
    pattern = None
    if mark_success_pattern is not None:
        try:
            pattern = re.compile(mark_success_pattern)
        except re.error as e:
            raise MillstreamError(
                f"--mark-success-pattern {mark_success_pattern!r} is not a regex: {e}"
            ) from None
    conf_dict = control.parse_conf(conf)
    when = parse_date(logical_date, "LOGICAL_DATE")
    env = Env(dags_folder)
    store = None if no_save else env.store
    found, file_dags = _find_dag(dag_id, env.settings, dagfile_path, store)

    # The task's stdout is redirected to its log while it runs: print where we were started.
    live = Console(file=sys.stdout, highlight=False, width=console.width if sys.stdout.isatty() else 250)

    def listen(kind: str, data: dict[str, Any]) -> None:
        if quiet or kind != "ti_finished":
            return
        idx = f"[{data['map_index']}]" if data["map_index"] >= 0 else ""
        err = f"  {escape(data['error'])}" if data.get("error") else ""
        live.print(f"{escape(data['task_id'] + idx)}: {styled(data['state'])}{err}", soft_wrap=True)

    def echo(label: str, line: str) -> None:
        live.print(f"[dim]{escape(label)} │[/] {escape(line)}", soft_wrap=True, highlight=False)

    result = run_dag_inline(
        found,
        conf=conf_dict,
        logical_date=when,
        listener=listen,
        echo=None if quiet else echo,
        mark_success_pattern=pattern,
        store=store,
        logs_folder=None if no_save else str(env.settings.logs_folder),
        result_store_url=None if no_save else env.settings.object_store_url,
        file_dags=file_dags,
    )
    _print_ti_table(result, {t.task_id: t.display_name for t in found.to_spec().tasks if t.display_name})
    failures = result.failures()
    if failures:
        console.print(f"\n[bold red]{len(failures)} failed task instance(s):[/]")
        for f in failures:
            idx = f"[{f.map_index}]" if f.map_index >= 0 else ""
            tried = f"try {f.try_number}" if f.try_number else "never ran"
            console.print(
                f"[bold]── {escape(f.task_id + idx)}[/] ({tried}): {escape(f.reason)}", soft_wrap=True
            )
            if f.traceback:
                console.print(escape(f.traceback.rstrip()), soft_wrap=True, highlight=False)
    why = (
        f" ({escape(result.state_reason)})" if result.state_reason and result.state.value != "success" else ""
    )
    console.print(f"Run {escape(result.run_id)}: {styled(result.state.value)}{why}", soft_wrap=True)
    if store is not None:
        console.print(
            f"Recorded: `millstream dags list-runs {dag_id}`, "
            f"`millstream tasks logs {dag_id} {result.run_id} TASK_ID`",
            soft_wrap=True,
            highlight=False,
        )
    if result.state.value != "success":
        sys.exit(1)


def _refuse_unsupported(use_executor: bool, show: bool, save: str | None, imgcat: bool) -> None:
    if use_executor:
        raise MillstreamError(
            "--use-executor is not supported: `dags test` always runs in this process; to run a DAG "
            "through the configured executor, trigger it (`millstream dags trigger`) with a scheduler running"
        )
    if show or save or imgcat:
        raise MillstreamError(
            "--show-dagrun/--save-dagrun/--imgcat-dagrun are not supported by `dags test`; "
            "`millstream dags show DAG_ID` prints the graph, and the UI shows each run's states"
        )


def _find_dag(dag_id: str, settings: Settings, dagfile_path: str | None, store: Any) -> tuple[Any, list[Any]]:
    """The DAG and the other DAGs of its file. Only its own file is imported when it is
    known (``--dagfile-path``, or where the store last saw it); the folder otherwise."""
    from millstream.sdk.loader import dag_files, load_file

    if dagfile_path is not None:
        if not os.path.isfile(dagfile_path):
            raise NotFoundError(f"--dagfile-path {dagfile_path!r}: no such file")
        candidates = [os.path.abspath(dagfile_path)]
    else:
        candidates = dag_files(settings.dags_folder)
        known = _known_fileloc(store, dag_id)
        if known in candidates:
            candidates.remove(known)
            candidates.insert(0, known)
    errors = []
    for f in candidates:
        loaded = load_file(f)
        if dag_id in loaded.dags:
            return loaded.dags[dag_id], list(loaded.dags.values())
        if loaded.error:
            errors.append(loaded.error)
    where = dagfile_path or str(settings.dags_folder)
    if not errors:
        raise NotFoundError(f"no DAG {dag_id!r} in {where}")
    # The DAG is most likely in a file that failed: show those errors here, not elsewhere.
    for e in errors[:10]:
        line = f":{e.lineno}" if e.lineno else ""
        err_console.print(f"[red]{escape(e.filename)}{line}[/]: {escape(e.message)}", soft_wrap=True)
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    raise NotFoundError(
        f"no DAG {dag_id!r} in {where}: {len(errors)} file(s) failed to import{more}, shown above"
    )


def _known_fileloc(store: Any, dag_id: str) -> str | None:
    if store is None:
        return None
    from millstream.store import dags as dags_q

    with store.read() as conn:
        try:
            return str(dags_q.get_dag(conn, dag_id)["fileloc"])
        except NotFoundError:
            return None


def _print_ti_table(result: Any, names: dict[str, str] | None = None) -> None:
    """``names``: task_display_name by task id, shown with the id."""
    from collections import Counter

    names = names or {}

    table = plain_table("task", "map_index", "state", "tries")
    by_task: dict[str, list[Any]] = {}
    for ti in result.task_instances:
        by_task.setdefault(ti.task_id, []).append(ti)
    for task_id, tis in by_task.items():
        role = " (setup)" if tis[0].is_setup else " (teardown)" if tis[0].is_teardown else ""
        if task_id in names:
            role = f" {names[task_id]}{role}"
        if len(tis) > 20:
            counts = Counter(t.state.value for t in tis)
            summary = ", ".join(f"{n} {styled(s)}" for s, n in counts.most_common())
            table.add_row(task_id + role, f"0..{len(tis) - 1}", summary, "")
            continue
        for ti in tis:
            idx = str(ti.map_index) if ti.map_index >= 0 else ""
            label = f" {ti.label}" if ti.label else ""
            table.add_row(task_id + role, idx + label, styled(ti.state.value), str(ti.try_number))
    console.print(table)
