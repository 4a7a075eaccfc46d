"""``millstream dags show | details | next-execution | report | reserialize``: Airflow's
everyday commands about DAGs, with Airflow's names, arguments and output.

Everything but ``report`` and ``reserialize`` reads the DAG from the store, as Airflow
reads its serialized DAG; ``report`` imports each file in this process and times it, as
Airflow's DagBag does, and ``reserialize`` parses the whole folder and records it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any

import click

from millstream.cli.dag_graph import to_dot, to_mermaid
from millstream.cli.dags import dags
from millstream.cli.env import Env, dags_folder_option
from millstream.cli.lookup import DAG_FOLDER_BUNDLE, bundle_option, dag_spec
from millstream.cli.output import console, echo_json, err_console, handle_errors, output_option, plain_table
from millstream.core.model import DagSpec
from millstream.core.timetables import RunInfo, Timetable, from_spec, parse_dates
from millstream.errors import MillstreamError
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.worker import stopping

_TEXT_FORMATS = {"dot": "dot", "gv": "dot", "mmd": "mermaid", "mermaid": "mermaid"}


@dags.command("show")
@click.argument("dag_id")
@click.option("--save", "-s", default=None, help="Save to this file; the extension picks the format.")
@click.option("--imgcat", is_flag=True, help="Show the graph in the terminal with imgcat (iTerm).")
@click.option("--mermaid", is_flag=True, help="Mermaid instead of DOT (a Millstream addition).")
@dags_folder_option
@handle_errors
def dags_show(dag_id: str, save: str | None, imgcat: bool, mermaid: bool, dags_folder: str | None) -> None:
    """Print DAG_ID's graph as Graphviz DOT (or Mermaid), or save it to a file.

    ``--save graph.dot`` or ``graph.mmd`` writes the text; any other extension
    (``.png``, ``.svg``, ``.pdf``) is rendered by Graphviz's ``dot`` program, which must
    be on PATH, as with Airflow.
    """
    if save and imgcat:
        raise click.UsageError(
            "Option --save and --imgcat are mutually exclusive. Please remove one option to execute the command."
        )
    _, spec = dag_spec(Env(dags_folder), dag_id)
    if imgcat:
        _imgcat(spec, mermaid)
        return
    if save is None:
        click.echo(to_mermaid(spec) if mermaid else to_dot(spec), nl=False)
        return
    ext = save.rpartition(".")[2].lower() if "." in os.path.basename(save) else ""
    kind = _TEXT_FORMATS.get(ext)
    if mermaid and kind != "mermaid":
        raise click.UsageError(f"--mermaid saves Mermaid text: name the file .mmd, not {save!r}")
    if kind == "mermaid":
        Path(save).write_text(to_mermaid(spec), encoding="utf-8")
    elif kind == "dot":
        Path(save).write_text(to_dot(spec), encoding="utf-8")
    else:
        if not ext:
            raise click.UsageError(f"--save {save!r} has no extension: use .dot, .mmd, .png, .svg or .pdf")
        Path(save).write_bytes(_graphviz(spec, ext))
    click.echo(f"File {save} saved")


def _graphviz(spec: DagSpec, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise MillstreamError(
            f"rendering to .{fmt} needs Graphviz's `dot` program on PATH (e.g. `apt-get install graphviz`); "
            "or save the text: --save FILE.dot, or --save FILE.mmd --mermaid"
        )
    p = subprocess.run([dot, f"-T{fmt}"], input=to_dot(spec).encode(), capture_output=True, timeout=120)
    if p.returncode != 0:
        raise MillstreamError(
            f"Graphviz could not render .{fmt}: {p.stderr.decode(errors='replace').strip()}"
        )
    return p.stdout


def _imgcat(spec: DagSpec, mermaid: bool) -> None:
    if mermaid:
        raise click.UsageError("--imgcat shows a picture Graphviz draws; it does not take --mermaid")
    if shutil.which("imgcat") is None:
        raise MillstreamError(
            "Failed to execute. Make sure the imgcat executables are on your systems 'PATH'"
        )
    png = _graphviz(spec, "png")
    p = subprocess.run(["imgcat"], input=png, capture_output=True, timeout=120)
    sys.stdout.buffer.write(p.stdout)
    if p.stderr:
        sys.stderr.buffer.write(p.stderr)


def _describe(spec: DagSpec, timetable: Timetable) -> str:
    """A schedule in words (Airflow's timetable_description), without Airflow's
    cron-descriptor dependency: crons are given as the expression and zone."""
    kind = spec.timetable.get("type", "none")
    if spec.asset_trigger and kind == "none":
        return "Triggered by assets"
    if kind == "none":
        return "Never, external triggers only"
    if kind == "once":
        return "Once, as soon as possible"
    if kind == "continuous":
        return "As frequently as possible, but only one run at a time."
    if kind in ("cron", "cron_interval"):
        return f"cron {spec.timetable['expr']} in {spec.timetable.get('tz', 'UTC')}"
    return f"every {timetable.summary}"


def next_runs(env: Env, spec: DagSpec, n: int, now: datetime) -> list[RunInfo | None]:
    """The next ``n`` runs the timetable makes: the first continues from the newest
    scheduled run as the scheduler does (catchup as the DAG says), each later one from
    the one before. A None ends the list: the timetable makes no more."""
    timetable = from_spec(spec.timetable)
    start, end = parse_dates(spec.start_date, spec.end_date)
    with env.store.read() as conn:
        last = runs_q.last_scheduled_info(conn, spec.dag_id)
    out: list[RunInfo | None] = []
    info = timetable.next_run(last=last, now=now, start=start, end=end, catchup=spec.catchup)
    out.append(info)
    while info is not None and len(out) < n:
        # Later runs as if each earlier one had happened (Airflow: catchup, no restriction).
        info = timetable.next_run(last=info, now=info.run_after, start=start, end=end, catchup=True)
        if info is not None and out[-1] is not None and info.logical_date <= out[-1].logical_date:
            info = None  # @once, @continuous: no distinct later run to show
        out.append(info)
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dags.command("details")
@click.argument("dag_id")
@dags_folder_option
@output_option
@handle_errors
def dags_details(dag_id: str, dags_folder: str | None, output: str) -> None:
    """DAG_ID's attributes, by Airflow's field names (``airflow dags details``)."""
    env = Env(dags_folder)
    row, spec = dag_spec(env, dag_id)
    timetable = from_spec(spec.timetable)
    with env.store.read() as conn:
        has_errors = any(e["filename"] == row["fileloc"] for e in dags_q.list_import_errors(conn))
    nxt = next_runs(env, spec, 1, datetime.now(UTC))[0]
    folder = str(env.settings.dags_folder)
    fileloc = row["fileloc"]
    relative = os.path.relpath(fileloc, folder) if fileloc.startswith(folder + os.sep) else fileloc
    name = spec.display_name or dag_id
    details: dict[str, Any] = {
        "dag_id": dag_id,
        "dag_display_name": name,
        "bundle_name": DAG_FOLDER_BUNDLE,
        "bundle_version": None,
        "is_paused": row["is_paused"],
        "is_stale": not row["is_active"],
        "last_parsed_time": _iso(row["last_parsed_at"]),
        "last_parse_duration": None,
        "last_expired": None,
        "relative_fileloc": relative,
        "fileloc": fileloc,
        "file_token": None,
        "owners": sorted(spec.owner_links),
        "description": spec.description,
        "timetable_summary": row["timetable_summary"],
        "timetable_description": _describe(spec, timetable),
        "timetable_partitioned": False,
        "timetable_periodic": timetable.periodic,
        "tags": [{"name": t, "dag_id": dag_id, "dag_display_name": name} for t in spec.tags],
        "max_active_tasks": spec.max_active_tasks,
        "max_active_runs": spec.max_active_runs,
        "max_consecutive_failed_dag_runs": 0,
        "has_task_concurrency_limits": any(
            t.max_active_tis_per_dag is not None or t.max_active_tis_per_dagrun is not None
            for t in spec.tasks
        ),
        "has_import_errors": has_errors,
        "next_dagrun_data_interval_start": _iso(nxt.interval_start) if nxt else None,
        "next_dagrun_data_interval_end": _iso(nxt.interval_end) if nxt else None,
        "next_dagrun_logical_date": _iso(nxt.logical_date) if nxt else None,
        "next_dagrun_run_after": _iso(nxt.run_after) if nxt else None,
        "allowed_run_types": None,
    }
    if output == "json":
        echo_json([details])
        return
    table = plain_table("property_name", "property_value")
    for key, value in details.items():
        if key == "tags":
            value = [t["name"] for t in value]
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    console.print(table)


_FIELDS: dict[str, Callable[[RunInfo], datetime]] = {
    "logical_date": attrgetter("logical_date"),
    "data_interval.start": attrgetter("interval_start"),
    "data_interval.end": attrgetter("interval_end"),
    "run_after": attrgetter("run_after"),
}
_NO_MORE = "[WARN] No following schedule can be found. This DAG may have schedule interval '@once' or `None`."


@dags.command("next-execution")
@click.argument("dag_id")
@click.option(
    "--field",
    type=click.Choice([*_FIELDS, "partition_key", "partition_date"]),
    default=None,
    help="Show this attribute of the next executions (default: logical_date).",
)
@click.option("--num-executions", "-n", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--table", "as_table", is_flag=True, help="Show a table of the next executions' attributes.")
@dags_folder_option
@handle_errors
def dags_next_execution(
    dag_id: str, field: str | None, num_executions: int, as_table: bool, dags_folder: str | None
) -> None:
    """The next logical dates of DAG_ID (one unless -n), from its timetable and last run."""
    if as_table and field:
        raise click.UsageError("Cannot use --table and --field together")
    if field in ("partition_key", "partition_date"):
        raise click.UsageError(f"--field {field}: Millstream has no partitioned timetables, so no {field}")
    env = Env(dags_folder)
    row, spec = dag_spec(env, dag_id)
    if row["is_paused"]:
        err_console.print("[INFO] Please be reminded this DAG is PAUSED now.", markup=False)
    infos = next_runs(env, spec, num_executions, datetime.now(UTC))
    if as_table:
        table = plain_table(*_FIELDS)
        for info in infos:
            if info is None:
                err_console.print(_NO_MORE, markup=False)
                continue
            table.add_row(*(str(get(info)) for get in _FIELDS.values()))
        console.print(table)
        return
    get = _FIELDS[field or "logical_date"]
    for info in infos:
        if info is None:
            err_console.print(_NO_MORE, markup=False)
            click.echo("None")
        else:
            click.echo(get(info).isoformat())


def _time_limit(seconds: float) -> contextlib.AbstractContextManager[None]:
    """A DAG file that imports for longer than ``seconds`` fails, as in the scheduler."""
    return stopping.alarm(
        seconds if seconds > 0 else None,
        lambda: TimeoutError(f"importing the DAG file took longer than {seconds:g}s (dag_file_timeout)"),
    )


@dags.command("report")
@bundle_option
@dags_folder_option
@output_option
@handle_errors
def dags_report(dags_folder: str | None, output: str) -> None:
    """How long each DAG file takes to import, slowest first, with its DAGs and tasks.

    Each file is imported in this process and timed (import plus describing its DAGs, the
    work parsing does), as Airflow's ``dags report`` loads its DagBag.
    """
    from millstream.sdk.loader import dag_files, load_file

    env = Env(dags_folder)
    folder = str(env.settings.dags_folder)
    stats: list[dict[str, Any]] = []
    failed = 0
    for path in dag_files(folder):
        t0 = time.perf_counter()
        with _time_limit(env.settings.dag_file_timeout):
            loaded = load_file(path)
            specs = [] if loaded.error else [d.to_spec() for d in loaded.dags.values()]
        elapsed = time.perf_counter() - t0
        failed += loaded.error is not None
        stats.append(
            {
                "file": os.path.relpath(path, folder) if path.startswith(folder + os.sep) else path,
                "duration": str(timedelta(seconds=elapsed)),
                "dag_num": len(specs),
                "task_num": sum(len(s.tasks) for s in specs),
                "dags": sorted(s.dag_id for s in specs),
                "_seconds": elapsed,
            }
        )
    stats.sort(key=lambda s: s["_seconds"], reverse=True)
    for s in stats:
        del s["_seconds"]
    if output == "json":
        echo_json(stats)
    else:
        table = plain_table("file", "duration", "dag_num", "task_num", "dags")
        for s in stats:
            table.add_row(
                s["file"], s["duration"], str(s["dag_num"]), str(s["task_num"]), ", ".join(s["dags"])
            )
        console.print(table)
    if failed:
        err_console.print(
            f"[red]{failed} DAG file(s) failed to import[/]: `millstream dags list-import-errors`"
        )


@dags.command("reserialize")
@bundle_option
@dags_folder_option
@handle_errors
def dags_reserialize(dags_folder: str | None) -> None:
    """Parse every DAG file again and record the DAGs in the store.

    A DAG whose structure or code changed gets a new version; import errors are
    recorded; DAGs whose file is gone stop being scheduled. What a scheduler does on its
    own, now, for when the store is out of date (after an upgrade, with no scheduler).
    """
    env = Env(dags_folder)
    parsed = env.sync_dags()
    found = sum(len(p.specs) for p in parsed if p.error is None)
    errors = [p for p in parsed if p.error is not None]
    console.print(f"Reserialized {found} DAG(s) from {len(parsed)} file(s) in {env.settings.dags_folder}")
    if errors:
        # Recorded like any other parse (exit 0, as Airflow's): the errors are in the store now.
        err_console.print(
            f"[red]{len(errors)} DAG file(s) failed to import[/]: `millstream dags list-import-errors`"
        )
