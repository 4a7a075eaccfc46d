"""``millstream dags``: list, test, trigger, pause DAGs and mark their runs."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from millstream import control
from millstream.cli.env import Env, dags_folder_option
from millstream.cli.output import (
    console,
    echo_json,
    err_console,
    fmt_dt,
    handle_errors,
    output_option,
    plain_table,
    styled,
)
from millstream.settings import Settings
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q


@click.group()
def dags() -> None:
    """List, test, trigger and pause DAGs."""


@dags.command("list")
@dags_folder_option
@output_option
@handle_errors
def dags_list(dags_folder: str | None, output: str) -> None:
    """DAGs found in the DAG folder.

    Only the folder's own: DAGs recorded earlier from files elsewhere (another ``-d``, a
    scheduler's folder) are named apart as stale for this folder, not mixed in.
    """
    env = Env(dags_folder)
    env.sync_dags()
    folder = str(env.settings.dags_folder)
    with env.store.read() as conn:
        rows = dags_q.list_dags(conn, folder=folder)
        errors = dags_q.list_import_errors(conn, folder=folder)
        mine = {r["dag_id"] for r in rows}
        stale = [r["dag_id"] for r in dags_q.list_dags(conn) if r["dag_id"] not in mine]
    if output == "json":
        echo_json(
            [
                {
                    "dag_id": r["dag_id"],
                    "fileloc": r["fileloc"],
                    "paused": r["is_paused"],
                    "schedule": r["timetable_summary"],
                    "tags": r["tags"],
                }
                for r in rows
            ]
        )
        return
    table = plain_table("dag_id", "schedule", "paused", "file", "tags")
    for r in rows:
        table.add_row(
            r["dag_id"],
            r["timetable_summary"] or "None",
            "yes" if r["is_paused"] else "no",
            os.path.relpath(r["fileloc"]),
            ", ".join(r["tags"]),
        )
    console.print(table)
    if stale:
        names = ", ".join(stale[:10]) + (f" and {len(stale) - 10} more" if len(stale) > 10 else "")
        err_console.print(
            f"{len(stale)} DAG(s) recorded from files outside {folder} not shown (stale for this folder): "
            f"{names}",
            highlight=False,
            soft_wrap=True,
        )
    if errors:
        err_console.print(
            f"[red]{len(errors)} DAG file(s) failed to import[/]: `millstream dags list-import-errors`"
        )


@dags.command("list-import-errors")
@dags_folder_option
@output_option
@handle_errors
def dags_list_import_errors(dags_folder: str | None, output: str) -> None:
    """DAG files that failed to import, with file and line."""
    env = Env(dags_folder)
    env.sync_dags()
    with env.store.read() as conn:
        errors = dags_q.list_import_errors(conn, folder=str(env.settings.dags_folder))
    if output == "json":
        echo_json(
            [
                {
                    "filename": e["filename"],
                    "lineno": e["lineno"],
                    "message": e["message"],
                    "timestamp": e["timestamp"].isoformat(),
                }
                for e in errors
            ]
        )
        sys.exit(1 if errors else 0)
    if not errors:
        console.print("No import errors.")
        return
    for e in errors:
        where = f"{e['filename']}:{e['lineno']}" if e["lineno"] else e["filename"]
        console.print(f"[bold]{where}[/]: {e['message']}", soft_wrap=True)
    sys.exit(1)


@dags.command("trigger")
@click.argument("dag_id")
@dags_folder_option
@click.option("--conf", default=None, help="Run conf as a JSON object.")
@click.option("--run-id", default=None, help="Run id (default: manual__<time>).")
@handle_errors
def dags_trigger(dag_id: str, dags_folder: str | None, conf: str | None, run_id: str | None) -> None:
    """Queue a manual run; a running scheduler picks it up.

    Only DAG_ID's own file is parsed again (if it changed), so the run pins its current
    code without waiting for the folder's other files to import.
    """
    env = Env(dags_folder)
    env.sync_dag(dag_id)
    rid = control.trigger(env.store, dag_id, conf=control.parse_conf(conf), run_id=run_id)
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Triggered {dag_id}: run {rid}")


@dags.command("pause")
@click.argument("dag_id")
@dags_folder_option
@handle_errors
def dags_pause(dag_id: str, dags_folder: str | None) -> None:
    """Stop creating scheduled runs of DAG_ID."""
    env = Env(dags_folder)
    env.know_dag(dag_id)
    control.set_paused(env.store, dag_id, True)
    console.print(f"Paused {dag_id}")


@dags.command("unpause")
@click.argument("dag_id")
@dags_folder_option
@handle_errors
def dags_unpause(dag_id: str, dags_folder: str | None) -> None:
    """Resume creating scheduled runs of DAG_ID."""
    env = Env(dags_folder)
    env.know_dag(dag_id)
    control.set_paused(env.store, dag_id, False)
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Unpaused {dag_id}")


@dags.command("list-runs")
@click.argument("dag_id")
@click.option("--state", default=None)
@click.option("--limit", default=25, show_default=True)
@output_option
@handle_errors
def dags_list_runs(dag_id: str, state: str | None, limit: int, output: str) -> None:
    """The most recent runs of DAG_ID."""
    store = Env(None).store
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        rows = runs_q.list_runs(conn, dag_id, state=state, limit=limit)
    if output == "json":

        def iso(value: Any) -> str | None:
            return value.isoformat() if value else None

        echo_json(
            [
                {
                    "dag_id": dag_id,
                    "run_id": r["run_id"],
                    "run_type": r["run_type"],
                    "state": r["state"],
                    "logical_date": iso(r["logical_date"]),
                    "start_date": iso(r["start_date"]),
                    "end_date": iso(r["end_date"]),
                }
                for r in rows
            ]
        )
        return
    table = plain_table("run_id", "type", "state", "logical date", "started", "ended")
    for r in rows:
        table.add_row(
            r["run_id"],
            r["run_type"],
            styled(r["state"]),
            fmt_dt(r["logical_date"]),
            fmt_dt(r["start_date"]),
            fmt_dt(r["end_date"]),
        )
    console.print(table)


def _mark_run(dag_id: str, run_id: str, state: str) -> None:
    from millstream.core.states import RunState
    from millstream.scheduler.wakeup import notify

    env = Env(None)
    changed = control.mark_run(env.store, dag_id, run_id, RunState(state))
    notify(env.settings.home)
    console.print(f"Marked run {run_id} {styled(state)} ({changed} unfinished task instance(s) changed)")


@dags.command("mark-run-success")
@click.argument("dag_id")
@click.argument("run_id")
@handle_errors
def dags_mark_run_success(dag_id: str, run_id: str) -> None:
    """Mark a run successful by hand; its pending teardowns still run."""
    _mark_run(dag_id, run_id, "success")


@dags.command("mark-run-failed")
@click.argument("dag_id")
@click.argument("run_id")
@handle_errors
def dags_mark_run_failed(dag_id: str, run_id: str) -> None:
    """Mark a run failed by hand; its pending teardowns still run."""
    _mark_run(dag_id, run_id, "failed")


@dags.command("check")
@click.argument("folder", required=False)
@dags_folder_option
@output_option
@handle_errors
def dags_check(folder: str | None, dags_folder: str | None, output: str) -> None:
    """Load every DAG file of FOLDER (default: the DAG folder), without the database, and
    say per file what loads and what not.

    With ``--airflow-imports`` it also lists, line by line, each ``airflow.*`` name the
    import hook has no Millstream equivalent for, found by reading the file rather than
    by running it: every missing name at once, not only the first that stops the import.
    """
    from rich.markup import escape

    from millstream.core.external import external_warnings
    from millstream.scheduler.parsing import DagFolder
    from millstream.sdk import airflow_imports
    from millstream.sdk.loader import dag_files

    settings = Settings.load(dags_folder=folder or dags_folder)
    files = dag_files(settings.dags_folder)
    if not files:
        raise click.ClickException(f"no DAG files under {settings.dags_folder}")
    hook = airflow_imports.wanted() != "off"
    parsed = {p.filename: p for p in DagFolder(settings.dags_folder, settings.dag_file_timeout).parse(files)}
    report = []
    for f in files:
        p = parsed.get(f)
        missing = airflow_imports.scan_file(f) if hook else []
        report.append(
            {
                "file": f,
                "dags": sorted(s.dag_id for s in p.specs) if p else [],
                "error": None
                if p is None or p.error is None
                else {"line": p.error.lineno, "message": p.error.message},
                "missing": [{"line": line, "name": name} for line, name in missing],
            }
        )
    specs = {s.dag_id: s for p in parsed.values() if p.error is None for s in p.specs}
    for w in external_warnings(specs.values(), specs.get):
        entry = next(r for r in report if r["file"] == specs[w.dag_id].fileloc)
        entry.setdefault("warnings", []).append({"line": w.lineno, "message": w.message})
    failed = [r for r in report if r["error"]]
    if output == "json":
        echo_json(report)
    else:
        for r in report:
            rel = os.path.relpath(r["file"])
            if r["error"]:
                line = r["error"]["line"]
                console.print(
                    f"[red]FAIL[/] {rel}{f':{line}' if line else ''}: {escape(r['error']['message'])}",
                    soft_wrap=True,
                    markup=True,
                    highlight=False,
                )
            else:
                console.print(f"[green]ok[/]   {rel}: {', '.join(r['dags']) or 'no DAGs'}", highlight=False)
            for m in r["missing"]:
                console.print(f"       {rel}:{m['line']}: no equivalent of {m['name']}", highlight=False)
            for w in r.get("warnings", []):
                console.print(
                    f"[yellow]warn[/] {rel}:{w['line']}: {escape(w['message'])}",
                    highlight=False,
                    soft_wrap=True,
                )
        console.print(
            f"{len(report) - len(failed)} of {len(report)} file(s) load, "
            f"{sum(len(r['dags']) for r in report)} DAG(s)"
        )
    if failed:
        sys.exit(1)
