"""The ``millstream`` command line: a thin layer over control.py and the store's queries."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from millstream import control
from millstream.errors import MillstreamError, NotFoundError
from millstream.settings import Settings
from millstream.store import Store, ensure_schema
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q

# Piped output (scripts, tests) must not be cut to 80 columns.
_WIDTH = None if sys.stdout.isatty() else 250
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)

STATE_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "dark_orange",
    "skipped": "magenta",
    "running": "cyan",
    "queued": "grey50",
    "scheduled": "tan",
    "up_for_retry": "yellow",
    "removed": "grey37",
    "none": "grey50",
}


def styled(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def fmt_dt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors Millstream raises on purpose become one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MillstreamError as e:
            err_console.print(f"[red]Error:[/] {e}", markup=True, soft_wrap=True)
            sys.exit(1)

    return wrapper


class Env:
    """Settings and store for one command invocation."""

    def __init__(self, dags_folder: str | None) -> None:
        self.settings = Settings.load(dags_folder=dags_folder)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.database_url)
            ensure_schema(self._store)
        return self._store

    def sync_dags(self) -> list[Any]:
        from millstream.scheduler.dagsync import sync_folder
        from millstream.scheduler.parsing import DagFolder

        folder = DagFolder(self.settings.dags_folder, self.settings.dag_file_timeout)
        return sync_folder(self.store, folder, paused_on_creation=self.settings.paused_on_creation)


dags_folder_option = click.option(
    "--dags-folder",
    "-d",
    default=None,
    envvar="MILLSTREAM_DAGS_FOLDER",
    help="Folder (or file) of DAG files. Default: $MILLSTREAM_HOME/dags.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="millstream")
def main() -> None:
    """Millstream: pipelines with Airflow's TaskFlow API, none of the weight."""
    logging.basicConfig(
        level=os.environ.get("MILLSTREAM_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# -- db --------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@handle_errors
def db_migrate() -> None:
    """Create or upgrade the database schema to the newest revision."""
    settings = Settings.load()
    store = Store(settings.database_url)
    rev = store.migrate()
    console.print(f"Database at revision {rev}: {_safe_url(settings.database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- dags ------------------------------------------------------------------------------------


@main.group()
def dags() -> None:
    """List, test, trigger and pause DAGs."""


@dags.command("list")
@dags_folder_option
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def dags_list(dags_folder: str | None, output: str) -> None:
    """DAGs found in the DAG folder."""
    env = Env(dags_folder)
    env.sync_dags()
    with env.store.read() as conn:
        rows = dags_q.list_dags(conn)
        errors = dags_q.list_import_errors(conn)
    if output == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "dag_id": r["dag_id"],
                        "fileloc": r["fileloc"],
                        "paused": r["is_paused"],
                        "schedule": r["timetable_summary"],
                        "tags": r["tags"],
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table("dag_id", "schedule", "paused", "file", "tags", box=None)
    for r in rows:
        table.add_row(
            r["dag_id"],
            r["timetable_summary"] or "None",
            "yes" if r["is_paused"] else "no",
            os.path.relpath(r["fileloc"]),
            ", ".join(r["tags"]),
        )
    console.print(table)
    if errors:
        err_console.print(
            f"[red]{len(errors)} DAG file(s) failed to import[/]: `millstream dags list-import-errors`"
        )


@dags.command("list-import-errors")
@dags_folder_option
@handle_errors
def dags_list_import_errors(dags_folder: str | None) -> None:
    """DAG files that failed to import, with file and line."""
    env = Env(dags_folder)
    env.sync_dags()
    with env.store.read() as conn:
        errors = dags_q.list_import_errors(conn)
    if not errors:
        console.print("No import errors.")
        return
    for e in errors:
        where = f"{e['filename']}:{e['lineno']}" if e["lineno"] else e["filename"]
        console.print(f"[bold]{where}[/]: {e['message']}", soft_wrap=True)
    sys.exit(1)


@dags.command("test")
@click.argument("dag_id")
@dags_folder_option
@click.option("--conf", default=None, help="Run conf as a JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="Only print the summary.")
@handle_errors
def dags_test(dag_id: str, dags_folder: str | None, conf: str | None, quiet: bool) -> None:
    """Run one DAG run in this process and print every task instance's state."""
    from millstream.sdk.loader import load_file
    from millstream.testing import run_dag_inline

    settings = Settings.load(dags_folder=dags_folder)
    conf_dict = control.parse_conf(conf)
    found = None
    errors = []
    from millstream.sdk.loader import dag_files

    for f in dag_files(settings.dags_folder):
        result = load_file(f)
        if result.error:
            errors.append(result.error)
        if dag_id in result.dags:
            found = result.dags[dag_id]
            break
    if found is None:
        hint = (
            f" ({len(errors)} file(s) failed to import: `millstream dags list-import-errors`)"
            if errors
            else ""
        )
        raise NotFoundError(f"no DAG {dag_id!r} in {settings.dags_folder}{hint}")

    def listen(kind: str, data: dict[str, Any]) -> None:
        if quiet or kind != "ti_finished":
            return
        idx = f"[{data['map_index']}]" if data["map_index"] >= 0 else ""
        err = f"  {data['error']}" if data.get("error") else ""
        console.print(f"  {data['task_id']}{idx}: {styled(data['state'])}{err}", soft_wrap=True)

    result = run_dag_inline(found, conf=conf_dict, listener=listen)
    _print_ti_table(result)
    console.print(f"Run {result.run_id}: {styled(result.state.value)}")
    if result.state.value != "success":
        sys.exit(1)


def _print_ti_table(result: Any) -> None:
    from collections import Counter

    table = Table("task", "map_index", "state", "tries", box=None)
    by_task: dict[str, list[Any]] = {}
    for ti in result.task_instances:
        by_task.setdefault(ti.task_id, []).append(ti)
    for task_id, tis in by_task.items():
        role = " (setup)" if tis[0].is_setup else " (teardown)" if tis[0].is_teardown else ""
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


@dags.command("trigger")
@click.argument("dag_id")
@dags_folder_option
@click.option("--conf", default=None, help="Run conf as a JSON object.")
@click.option("--run-id", default=None, help="Run id (default: manual__<time>).")
@handle_errors
def dags_trigger(dag_id: str, dags_folder: str | None, conf: str | None, run_id: str | None) -> None:
    """Queue a manual run; a running scheduler picks it up."""
    env = Env(dags_folder)
    env.sync_dags()
    rid = control.trigger(env.store, dag_id, conf=control.parse_conf(conf), run_id=run_id)
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Triggered {dag_id}: run {rid}")


@dags.command("pause")
@click.argument("dag_id")
@handle_errors
def dags_pause(dag_id: str) -> None:
    """Stop creating scheduled runs of DAG_ID."""
    control.set_paused(Env(None).store, dag_id, True)
    console.print(f"Paused {dag_id}")


@dags.command("unpause")
@click.argument("dag_id")
@handle_errors
def dags_unpause(dag_id: str) -> None:
    """Resume creating scheduled runs of DAG_ID."""
    env = Env(None)
    control.set_paused(env.store, dag_id, False)
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Unpaused {dag_id}")


@dags.command("list-runs")
@click.argument("dag_id")
@click.option("--state", default=None)
@click.option("--limit", default=25, show_default=True)
@handle_errors
def dags_list_runs(dag_id: str, state: str | None, limit: int) -> None:
    """The most recent runs of DAG_ID."""
    store = Env(None).store
    with store.read() as conn:
        dags_q.get_dag(conn, dag_id)
        rows = runs_q.list_runs(conn, dag_id, state=state, limit=limit)
    table = Table("run_id", "type", "state", "logical date", "started", "ended", box=None)
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


# -- tasks -----------------------------------------------------------------------------------


@main.group()
def tasks() -> None:
    """Inspect task instances."""


@tasks.command("states")
@click.argument("dag_id")
@click.argument("run_id")
@handle_errors
def tasks_states(dag_id: str, run_id: str) -> None:
    """Every task instance of a run, with its state and why it waits."""
    store = Env(None).store
    run, tis = control.task_instances(store, dag_id, run_id)
    with store.read() as conn:
        spec = dags_q.spec_for_version(conn, run["dag_version_id"])
    table = Table("task", "map_index", "state", "tries", "reason", box=None)
    for t in tis:
        task = spec.task(t["task_id"]) if spec.has_task(t["task_id"]) else None
        role = " (setup)" if task and task.is_setup else " (teardown)" if task and task.is_teardown else ""
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
        start_date=_parse_date(start_date, "--start-date"),
        end_date=_parse_date(end_date, "--end-date"),
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
    table = Table("run", "task", "map_index", "state", box=None)
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


def _parse_date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MillstreamError(f"{option} {value!r} is not a date; use ISO 8601, e.g. 2025-01-31") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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


# -- pools -----------------------------------------------------------------------------------


@main.group()
def pools() -> None:
    """Named slots shared by every DAG (``pool=`` on a task)."""


@pools.command("list")
@handle_errors
def pools_list() -> None:
    """Pools with their slots and how many are taken."""
    from millstream.store import pools as pools_q

    with Env(None).store.read() as conn:
        rows = pools_q.list_pools(conn)
    table = Table("pool", "slots", "used", "description", box=None)
    for r in rows:
        table.add_row(str(r["name"]), str(r["slots"]), str(r["used"]), str(r["description"]))
    console.print(table)


@pools.command("set")
@click.argument("name")
@click.argument("slots", type=int)
@click.option("--description", default=None)
@handle_errors
def pools_set(name: str, slots: int, description: str | None) -> None:
    """Create pool NAME or change its number of SLOTS."""
    from millstream.store import pools as pools_q

    env = Env(None)
    with env.store.begin() as conn:
        pools_q.set_pool(conn, name, slots, description)
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Pool {name}: {slots} slots")


@pools.command("delete")
@click.argument("name")
@handle_errors
def pools_delete(name: str) -> None:
    """Delete pool NAME (tasks using it wait until it exists again)."""
    from millstream.store import pools as pools_q

    with Env(None).store.begin() as conn:
        pools_q.delete_pool(conn, name)
    console.print(f"Deleted pool {name}")


# -- celery ----------------------------------------------------------------------------------


@main.group()
def celery() -> None:
    """Celery workers (extra `celery`): run task instances on other machines."""


@celery.command("worker")
@click.option(
    "--queues",
    "-q",
    default=None,
    help="Comma-separated queues to take work from (default: the default queue).",
)
@click.option(
    "--concurrency", "-c", default=None, type=click.IntRange(min=1), help="Attempts at once (default: cores)."
)
@handle_errors
def celery_worker(queues: str | None, concurrency: int | None) -> None:
    """Run a Celery worker that executes Millstream task instances."""
    from millstream.executors.celery import worker_main

    settings = Settings.load()
    ensure_schema(Store(settings.database_url))
    names = [q.strip() for q in (queues or settings.default_queue).split(",") if q.strip()]
    worker_main(
        names, concurrency or max(2, os.cpu_count() or 2), settings.broker_url, settings.default_queue
    )


@celery.command("status")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def celery_status(output: str) -> None:
    """Workers that answer, their queues, concurrency and running attempts."""
    from millstream.executors.celery import status
    from millstream.settings import mask

    settings = Settings.load()
    try:
        workers = status(settings.broker_url, settings.default_queue)
    except Exception as e:  # noqa: BLE001 - kombu raises many kinds; the user needs one line
        raise MillstreamError(
            f"could not reach the Celery broker at {mask(settings.broker_url)}: {type(e).__name__}: {e}"
        ) from None
    if output == "json":
        click.echo(json.dumps(workers, indent=2))
        return
    if not workers:
        console.print(f"No Celery worker answered on {mask(settings.broker_url)}.")
        return
    table = Table("worker", "queues", "concurrency", "active", box=None)
    for w in workers:
        table.add_row(w["worker"], ", ".join(w["queues"]), str(w["concurrency"]), str(w["active"]))
    console.print(table)


# -- config ----------------------------------------------------------------------------------


@main.group()
def config() -> None:
    """Settings: millstream.toml and MILLSTREAM__SECTION__KEY variables."""


@config.command("show")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def config_show(output: str) -> None:
    """The effective settings, where each came from, secrets masked."""
    from millstream.settings import mask

    settings = Settings.load()
    rows = [
        (s.name, mask(value) if s.secret and value else ("" if value is None else str(value)), source)
        for s, value, source in settings.effective()
    ]
    if output == "json":
        click.echo(json.dumps([{"setting": n, "value": v, "source": src} for n, v, src in rows], indent=2))
        return
    console.print(f"home {settings.home}; config file {settings.config_file or '(none)'}")
    table = Table("setting", "value", "source", box=None)
    for name, value, source in rows:
        table.add_row(name, escape(value), source)
    console.print(table)


@config.command("reference")
@click.option("--write", type=click.Path(dir_okay=False), default=None, help="Write it to this file.")
def config_reference(write: str | None) -> None:
    """The configuration reference page (docs/configuration.md), from the code."""
    from millstream.settings import reference_markdown

    text = reference_markdown()
    if write:
        Path(write).write_text(text)
    else:
        click.echo(text, nl=False)


# -- assets ----------------------------------------------------------------------------------


@main.group()
def assets() -> None:
    """Assets: their events, who produces and consumes them, and events from outside."""


@assets.command("list")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def assets_list(output: str) -> None:
    """Known assets with their producers, consumers and latest event."""
    from millstream.store import assets as assets_q

    with Env(None).store.read() as conn:
        rows = assets_q.list_assets(conn)
        refs = assets_q.refs_by_key(conn)
    if output == "json":
        data = [
            {
                "name": r["name"],
                "uri": r["uri"],
                "group": r["asset_group"],
                "events": r["events"],
                "last_event": r["last_event"].isoformat() if r["last_event"] else None,
                **refs.get(f"asset:{r['name']}", {"producers": [], "consumers": [], "readers": []}),
            }
            for r in rows
        ]
        click.echo(json.dumps(data, indent=2))
        return
    table = Table("asset", "uri", "events", "last event", "produced by", "schedules", box=None)
    for r in rows:
        ref = refs.get(f"asset:{r['name']}", {})
        table.add_row(
            escape(r["name"]),
            escape(r["uri"]) if r["uri"] != r["name"] else "",
            str(r["events"]),
            fmt_dt(r["last_event"]),
            ", ".join(ref.get("producers", [])) or "-",
            ", ".join(ref.get("consumers", [])) or "-",
        )
    console.print(table)


def _source(r: Any) -> str:
    if r["source"] != "task":
        return str(r["source"])
    idx = f"[{r['source_map_index']}]" if (r["source_map_index"] or -1) >= 0 else ""
    return f"{r['source_dag_id']}.{r['source_task_id']}{idx} ({r['source_run_id']})"


@assets.command("events")
@click.argument("name")
@click.option("--limit", default=25, show_default=True, type=click.IntRange(min=1))
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def assets_events(name: str, limit: int, output: str) -> None:
    """The latest events of asset NAME, newest first."""
    from millstream.store import assets as assets_q

    with Env(None).store.read() as conn:
        rows = assets_q.events_of(conn, name, limit=limit)
    if output == "json":
        data = [{**dict(r), "timestamp": r["timestamp"].isoformat()} for r in rows]
        click.echo(json.dumps(data, indent=2))
        return
    table = Table("id", "time", "source", "extra", box=None)
    for r in rows:
        table.add_row(
            str(r["id"]), fmt_dt(r["timestamp"]), escape(_source(r)), escape(json.dumps(r["extra"]))
        )
    console.print(table)


@assets.command("emit")
@click.argument("name")
@click.option("--extra", default=None, help="Event metadata as a JSON object.")
@dags_folder_option
@handle_errors
def assets_emit(name: str, extra: str | None, dags_folder: str | None) -> None:
    """Record an event for asset NAME from outside: DAGs scheduled on it run as if a task
    had updated it."""
    env = Env(dags_folder)
    payload = control.parse_extra(extra)
    env.sync_dags()
    event_id = control.emit_asset_event(env.store, name, extra=payload)
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Emitted event {event_id} for asset {escape(name)}")


@assets.command("graph")
@handle_errors
def assets_graph() -> None:
    """Producers -> asset -> consumers, one line per asset (and per alias)."""
    from millstream.store import assets as assets_q

    with Env(None).store.read() as conn:
        rows = assets_q.list_assets(conn)
        aliases = assets_q.list_aliases(conn)
        refs = assets_q.refs_by_key(conn)

    def line(label: str, ref: dict[str, list[str]], note: str = "") -> None:
        producers = ", ".join(ref.get("producers", [])) or "(external)"
        consumers = ", ".join(ref.get("consumers", [])) or "-"
        console.print(f"{escape(producers)} -> [bold]{escape(label)}[/]{note} -> {escape(consumers)}")

    for r in rows:
        line(r["name"], refs.get(f"asset:{r['name']}", {}))
    for a in aliases:
        stands_for = f" (alias of {', '.join(a['assets'])})" if a["assets"] else " (alias, not resolved yet)"
        line(f"alias {a['name']}", refs.get(f"alias:{a['name']}", {}), escape(stands_for))


@assets.command("queued")
@click.argument("dag_id")
@handle_errors
def assets_queued(dag_id: str) -> None:
    """Events queued for DAG_ID that no run has consumed yet, and what it waits for."""
    from millstream.core.assets import describe
    from millstream.store import assets as assets_q

    with Env(None).store.read() as conn:
        row = dags_q.get_dag(conn, dag_id)
        _, spec = dags_q.latest_spec(conn, dag_id)
        rows = assets_q.queued(conn, dag_id)
    if not spec.asset_trigger:
        raise MillstreamError(f"DAG {dag_id!r} is not scheduled on assets")
    trigger = spec.asset_trigger
    paused = " (paused: events wait until it is unpaused)" if row["is_paused"] else ""
    console.print(
        f"{dag_id} runs on: {escape(describe(trigger['condition']))}, "
        f"policy {trigger.get('policy', 'batch')}{paused}"
    )
    if not rows:
        console.print("No queued events.")
        return
    table = Table("event", "asset", "as", "time", "source", "extra", box=None)
    for r in rows:
        table.add_row(
            str(r["event_id"]),
            escape(r["asset_name"]),
            escape(r["key"]),
            fmt_dt(r["timestamp"]),
            r["source"],
            escape(json.dumps(r["extra"])),
        )
    console.print(table)


# -- backfill --------------------------------------------------------------------------------


@main.group()
def backfill() -> None:
    """Run a DAG over a range of past intervals, as a persisted, resumable job."""


@backfill.command("create")
@click.option("--dag-id", required=True)
@click.option("--from-date", required=True, help="First logical date (ISO 8601), inclusive.")
@click.option("--to-date", required=True, help="Last logical date (ISO 8601), inclusive.")
@click.option(
    "--reprocess-behavior",
    type=click.Choice(["none", "failed", "completed"]),
    default="none",
    show_default=True,
    help="What to do with runs that already exist for an interval.",
)
@click.option("--max-active-runs", type=int, default=10, show_default=True)
@click.option("--run-backwards", is_flag=True, help="Newest interval first.")
@click.option("--dry-run", is_flag=True, help="Print the intervals and what would happen to each.")
@click.option("--conf", default=None, help="Conf for every run, as a JSON object.")
@click.option("--detach", is_flag=True, help="Do not follow the progress.")
@dags_folder_option
@handle_errors
def backfill_create(
    dag_id: str,
    from_date: str,
    to_date: str,
    reprocess_behavior: str,
    max_active_runs: int,
    run_backwards: bool,
    dry_run: bool,
    conf: str | None,
    detach: bool,
    dags_folder: str | None,
) -> None:
    """Create a backfill; a running scheduler works through it (and picks it up after a restart)."""
    env = Env(dags_folder)
    env.sync_dags()
    start = _parse_date(from_date, "--from-date")
    end = _parse_date(to_date, "--to-date")
    assert start is not None and end is not None
    backfill_id, items = control.create_backfill(
        env.store,
        dag_id,
        start,
        end,
        reprocess=reprocess_behavior,
        max_active_runs=max_active_runs,
        run_backwards=run_backwards,
        conf=control.parse_conf(conf),
        dry_run=dry_run,
    )
    if dry_run:
        table = Table("logical date", "data interval", "existing run", "action", box=None)
        for it in items:
            existing = f"{it.existing_run_id} ({it.existing_state})" if it.existing_run_id else "-"
            table.add_row(
                fmt_dt(it.logical_date),
                f"{fmt_dt(it.interval_start)} .. {fmt_dt(it.interval_end)}",
                existing,
                it.action,
            )
        console.print(table)
        counts = {a: sum(1 for i in items if i.action == a) for a in ("create", "rerun", "skip")}
        console.print(
            f"Dry run: {counts['create']} to create, {counts['rerun']} to rerun, {counts['skip']} to skip"
        )
        return
    from millstream.scheduler.wakeup import notify

    notify(env.settings.home)
    console.print(f"Backfill {backfill_id} of {dag_id}: {sum(i.action != 'skip' for i in items)} run(s)")
    if not detach:
        assert backfill_id is not None
        _follow_backfill(env, backfill_id)


def _follow_backfill(env: Env, backfill_id: int) -> None:
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from millstream.store import backfills as backfills_q

    with env.store.read() as conn:
        total = sum(backfills_q.progress(conn, backfill_id).values())
    hinted = False
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]backfill {task.fields[bid]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task_bar = bar.add_task("runs", total=total, bid=backfill_id, detail="")
        while True:
            with env.store.read() as conn:
                state = backfills_q.get(conn, backfill_id)["state"]
                p = backfills_q.progress(conn, backfill_id)
            done = p["success"] + p["failed"]
            bar.update(
                task_bar, completed=done, detail=f"{p['running']} running, {p['failed']} failed, {state}"
            )
            if state in ("completed", "cancelled"):
                break
            if not hinted and done == 0 and p["running"] == 0 and time.monotonic() - started > 10:
                bar.console.print(
                    "No progress yet: is a scheduler running (`millstream scheduler` or `standalone`)?"
                )
                hinted = True
            time.sleep(0.5)
    _print_backfill(env, backfill_id)


def _print_backfill(env: Env, backfill_id: int) -> None:
    from millstream.store import backfills as backfills_q

    with env.store.read() as conn:
        b = backfills_q.get(conn, backfill_id)
        p = backfills_q.progress(conn, backfill_id)
        failed = backfills_q.failed_run_ids(conn, backfill_id, limit=20)
    table = Table("backfill", "dag", "range", "state", "done", "failed", "running", "pending", box=None)
    table.add_row(*_backfill_cells(b, p))
    console.print(table)
    for run_id in failed:
        console.print(f"  failed: {run_id}")


def _backfill_cells(b: Any, p: dict[str, int]) -> list[str]:
    return [
        str(b["id"]),
        b["dag_id"],
        f"{fmt_dt(b['from_date'])} .. {fmt_dt(b['to_date'])}",
        styled(b["state"]),
        str(p["success"]),
        str(p["failed"]),
        str(p["running"]),
        str(p["queued"]),
    ]


@backfill.command("list")
@click.option("--dag-id", default=None)
@handle_errors
def backfill_list(dag_id: str | None) -> None:
    """Backfills, newest first, with their progress."""
    from millstream.store import backfills as backfills_q

    env = Env(None)
    table = Table("id", "dag", "range", "state", "done", "failed", "running", "pending", box=None)
    with env.store.read() as conn:
        for b in backfills_q.list_all(conn, dag_id):
            table.add_row(*_backfill_cells(b, backfills_q.progress(conn, b["id"])))
    console.print(table)


@backfill.command("show")
@click.argument("backfill_id", type=int)
@handle_errors
def backfill_show(backfill_id: int) -> None:
    """One backfill's progress: runs done, failed, running and pending."""
    _print_backfill(Env(None), backfill_id)


def _backfill_action(backfill_id: int, action: str) -> None:
    from millstream.scheduler.wakeup import notify

    env = Env(None)
    state = control.set_backfill_state(env.store, backfill_id, action)
    notify(env.settings.home)
    console.print(f"Backfill {backfill_id}: {styled(state)}")


@backfill.command("pause")
@click.argument("backfill_id", type=int)
@handle_errors
def backfill_pause(backfill_id: int) -> None:
    """Start no more runs (running ones finish)."""
    _backfill_action(backfill_id, "pause")


@backfill.command("resume")
@click.argument("backfill_id", type=int)
@handle_errors
def backfill_resume(backfill_id: int) -> None:
    """Start runs again."""
    _backfill_action(backfill_id, "resume")


@backfill.command("cancel")
@click.argument("backfill_id", type=int)
@handle_errors
def backfill_cancel(backfill_id: int) -> None:
    """Stop for good: runs not started yet end failed; running ones finish."""
    _backfill_action(backfill_id, "cancel")


# -- users and the API server ----------------------------------------------------------------


@main.group()
def users() -> None:
    """Accounts of the API and web UI: admins change things, viewers read."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer", show_default=True)
@click.option(
    "--password",
    default=None,
    help="Default: asked for (or read from $MILLSTREAM_PASSWORD); never put it in shell history.",
)
@handle_errors
def users_create(username: str, role: str, password: str | None) -> None:
    """Create user USERNAME."""
    from millstream.store import users as users_q

    password = password or os.environ.get("MILLSTREAM_PASSWORD")
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with Env(None).store.begin() as conn:
        users_q.create_user(conn, username, password, role)
    console.print(f"Created {role} {escape(username)}")


@users.command("list")
@handle_errors
def users_list() -> None:
    """Users and their roles."""
    from millstream.store import users as users_q

    table = Table("user", "role", "created", box=None)
    with Env(None).store.read() as conn:
        for u in users_q.list_users(conn):
            table.add_row(escape(u["username"]), u["role"], fmt_dt(u["created_at"]))
    console.print(table)


@users.command("delete")
@click.argument("username")
@handle_errors
def users_delete(username: str) -> None:
    """Delete user USERNAME and its tokens."""
    from millstream.store import users as users_q

    with Env(None).store.begin() as conn:
        users_q.delete_user(conn, username)
    console.print(f"Deleted {escape(username)}")


@users.command("set-password")
@click.argument("username")
@handle_errors
def users_set_password(username: str) -> None:
    """Change USERNAME's password (its web sessions end and its tokens are revoked)."""
    from millstream.store import users as users_q

    password = os.environ.get("MILLSTREAM_PASSWORD") or click.prompt(
        "New password", hide_input=True, confirmation_prompt=True
    )
    with Env(None).store.begin() as conn:
        users_q.set_password(conn, username, password)
    console.print(f"Password of {escape(username)} changed")


@users.command("token")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@handle_errors
def users_token(username: str, name: str) -> None:
    """Make a bearer token for USERNAME and print it (once: only its hash is kept)."""
    from millstream.store import users as users_q

    with Env(None).store.begin() as conn:
        token = users_q.create_token(conn, username, name)
    click.echo(token)


@users.command("tokens")
@click.argument("username")
@handle_errors
def users_tokens(username: str) -> None:
    """USERNAME's tokens (their ids and names; the tokens themselves are not kept)."""
    from millstream.store import users as users_q

    table = Table("id", "name", "created", box=None)
    with Env(None).store.read() as conn:
        for t in users_q.list_tokens(conn, username):
            table.add_row(str(t["id"]), escape(t["name"]), fmt_dt(t["created_at"]))
    console.print(table)


@users.command("revoke")
@click.argument("username")
@click.argument("token_id", type=int)
@handle_errors
def users_revoke(username: str, token_id: int) -> None:
    """Revoke token TOKEN_ID of USERNAME (`users tokens` lists them)."""
    from millstream.store import users as users_q

    with Env(None).store.begin() as conn:
        users_q.revoke_token(conn, username, token_id)
    console.print(f"Revoked token {token_id} of {escape(username)}")


def first_admin(store: Store) -> str | None:
    """On a database with no users, create ``admin`` with a random password and return it."""
    import secrets

    from millstream.store import users as users_q

    with store.begin() as conn:
        if users_q.count_users(conn):
            return None
        password = secrets.token_urlsafe(12)
        users_q.create_user(conn, "admin", password, "admin")
    return password


@main.command("api-server")
@click.option("--host", default=None, help="Default: [api] host (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Default: [api] port (8080).")
@handle_errors
def api_server(host: str | None, port: int | None) -> None:
    """Serve the REST API (/api/v1) and the web UI until Ctrl-C."""
    from millstream.api.app import create_app, serve

    env = Env(None)
    settings = env.settings
    app = create_app(settings, env.store)
    host, port = host or settings.host, port or settings.port
    console.print(
        f"API and web UI on http://{host}:{port}/ (OpenAPI: http://{host}:{port}/api/v1/openapi.json)"
    )
    serve(app, host, port).run()


# -- scheduler and standalone ----------------------------------------------------------------


def _build_scheduler(
    settings: Settings, store: Store, listener: Callable[[str, dict[str, Any]], None] | None = None
) -> Any:
    from millstream.executors.local import LocalExecutor
    from millstream.scheduler.loop import Scheduler
    from millstream.scheduler.parsing import DagFolder

    executor: Any
    if settings.executor == "celery":
        from millstream.executors.celery import CeleryExecutor

        executor = CeleryExecutor(
            store,
            settings.broker_url,
            default_queue=settings.default_queue,
            lease_timeout=settings.lease_timeout,
        )
    else:
        executor = LocalExecutor(
            settings.database_url, settings.parallelism, lease_timeout=settings.lease_timeout
        )
    return Scheduler(
        store,
        executor,
        logs_folder=str(settings.logs_folder),
        dag_folder=DagFolder(settings.dags_folder, settings.dag_file_timeout),
        poll_interval=settings.poll_interval,
        dag_refresh_interval=settings.dag_refresh_interval,
        paused_on_creation=settings.paused_on_creation,
        max_map_length=settings.max_map_length,
        listener=listener,
        heartbeat_timeout=settings.heartbeat_timeout,
        result_store_url=settings.object_store_url,
        inline_limit=settings.inline_limit,
    )


def _run_until_signal(scheduler: Any, home: Path) -> None:
    from millstream.scheduler.wakeup import WakeupListener

    def stop(signum: int, frame: Any) -> None:
        scheduler.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    listener = WakeupListener(home, scheduler.nudge)
    listener.start()
    try:
        scheduler.run_forever()
    finally:
        listener.stop()


@main.command("scheduler")
@dags_folder_option
@handle_errors
def scheduler_cmd(dags_folder: str | None) -> None:
    """Run the scheduler with the local executor until Ctrl-C."""
    env = Env(dags_folder)
    logging.getLogger("millstream").setLevel(logging.INFO)
    console.print(
        f"Scheduler: DAGs from {env.settings.dags_folder}, database {_safe_url(env.settings.database_url)}"
    )
    _run_until_signal(_build_scheduler(env.settings, env.store), env.settings.home)


@main.command("standalone")
@dags_folder_option
@click.option("--trigger", "trigger_dag", default=None, help="Trigger this DAG once at start and follow it.")
@click.option("--exit-after-run", is_flag=True, help="Stop once the triggered run finished.")
@click.option("--unpause", "unpause_dags", multiple=True, help="Unpause this DAG at start (repeatable).")
@click.option(
    "--port", type=int, default=None, help="Port of the API and web UI (default: [api] port, 8080)."
)
@click.option("--no-api", is_flag=True, help="Do not serve the API and web UI.")
@handle_errors
def standalone(
    dags_folder: str | None,
    trigger_dag: str | None,
    exit_after_run: bool,
    unpause_dags: tuple[str, ...],
    port: int | None,
    no_api: bool,
) -> None:
    """Everything in one process: migrate, scheduler, local executor, API and web UI.

    With --trigger, the DAG is triggered once and its progress printed. On first start an
    ``admin`` user is created and its password printed (once).
    """
    env = Env(dags_folder)
    settings = env.settings
    settings.home.mkdir(parents=True, exist_ok=True)
    env.store.migrate()
    followed: dict[str, Any] = {}
    done = threading.Event()

    def listen(kind: str, data: dict[str, Any]) -> None:
        if kind == "run_created" and data.get("event_ids"):
            console.print(
                f"Asset events {data['event_ids']} triggered run {data['run_id']} of {data['dag_id']}",
                soft_wrap=True,
            )
            return
        if kind == "run_finished" and data.get("run_id") != followed.get("run_id"):
            console.print(
                f"Run {data['run_id']} of {data['dag_id']}: {styled(data['state'])}", soft_wrap=True
            )
            return
        if not followed or data.get("run_id") != followed.get("run_id"):
            return
        if kind == "ti_finished":
            if data["map_index"] >= _SHOWN_INSTANCES:
                return  # a wide map: the first instances show the shape, the run's end the total
            idx = f"[{data['map_index']}]" if data["map_index"] >= 0 else ""
            console.print(f"  {data['task_id']}{idx}: {styled(data['state'])}", soft_wrap=True)
            for line in _task_output(data["log_path"]):
                console.print(f"      [dim]│[/] {escape(line)}", soft_wrap=True)
        elif kind == "run_finished":
            console.print(f"Run {data['run_id']} of {data['dag_id']}: {styled(data['state'])}")
            done.set()
            if exit_after_run:
                scheduler.stop()

    scheduler = _build_scheduler(settings, env.store, listen)
    console.print("[bold]Millstream standalone[/]")
    console.print(f"  home      {settings.home}")
    console.print(f"  DAGs      {settings.dags_folder}")
    console.print(f"  database  {_safe_url(settings.database_url)}")
    console.print(f"  logs      {settings.logs_folder}")
    api = None if no_api else _start_api(env, port or settings.port)
    if trigger_dag or unpause_dags:
        scheduler.refresh_dags()
    for dag_id in unpause_dags:
        control.set_paused(env.store, dag_id, False)
        console.print(f"Unpaused {dag_id}")
    _print_watched_folders(env.store)
    if trigger_dag:
        run_id = control.trigger(env.store, trigger_dag)
        followed["run_id"] = run_id
        scheduler.nudge()
        console.print(f"Triggered {trigger_dag}: run {run_id}")
    prog = _command_prefix(settings)
    console.print("In another terminal, look around with:")
    console.print(f"  {prog} dags list-runs {trigger_dag or 'DAG_ID'}")
    console.print(f"  {prog} tasks states {trigger_dag or 'DAG_ID'} {followed.get('run_id', 'RUN_ID')}")
    console.print("Ctrl-C stops.")
    try:
        _run_until_signal(scheduler, settings.home)
    finally:
        if api is not None:
            api.stop()
    console.print("Stopped.")


class _ApiThread:
    """The API server of ``standalone``, in a thread beside the scheduler."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.run, name="millstream-api", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise MillstreamError(
                "the API server did not start; run with MILLSTREAM_LOG_LEVEL=INFO to see why"
            )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _start_api(env: Env, port: int) -> _ApiThread:
    import socket

    from millstream.api.app import create_app, serve

    host = env.settings.host
    with socket.socket() as probe:  # a clear error instead of uvicorn exiting inside a thread
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise MillstreamError(
                f"cannot serve the API on {host}:{port} ({e.strerror}); pass --port, or --no-api"
            ) from None
    password = first_admin(env.store)
    api = _ApiThread(serve(create_app(env.settings, env.store), host, port))
    api.start()
    console.print(f"  web UI    http://{host}:{port}/   (API: http://{host}:{port}/api/v1/openapi.json)")
    if password:
        console.print(
            f"  login     admin / [bold]{password}[/]   (shown once; `millstream users` manages users)"
        )
    return api


_SHOWN_INSTANCES = 10


def _print_watched_folders(store: Store) -> None:
    from millstream.scheduler.watchers import WatcherThread

    for w in WatcherThread(store, lambda: None).specs():
        console.print(
            f"  watching  {w.path}/{w.pattern} -> asset {w.asset} (settles after {w.settle_seconds:g}s)"
        )


def _command_prefix(settings: Settings) -> str:
    """How to call this same millstream, on this same home, from a shell."""
    import shlex

    exe = Path(sys.argv[0])
    prog = str(exe) if exe.name == "millstream" else "millstream"
    env = f"MILLSTREAM_HOME={shlex.quote(str(settings.home))} " if os.environ.get("MILLSTREAM_HOME") else ""
    return f"{env}{prog}"


def _task_output(path: str | None) -> list[str]:
    """The lines a task printed (its log without Millstream's own start/end lines)."""
    if path is None:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [ln for ln in lines[1:-1] if ln.strip()][:20]


if __name__ == "__main__":
    main()


__all__ = ["main"]
