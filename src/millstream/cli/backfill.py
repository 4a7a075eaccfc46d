"""``millstream backfill``: persisted runs over a range of past intervals, and their progress."""

from __future__ import annotations

from typing import Any

import click

from millstream import control
from millstream.cli.env import Env, dags_folder_option, parse_date
from millstream.cli.output import (
    console,
    echo_json,
    fmt_dt,
    handle_errors,
    output_option,
    plain_table,
    styled,
)


@click.group()
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
    env.sync_dag(dag_id)
    start = parse_date(from_date, "--from-date")
    end = parse_date(to_date, "--to-date")
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
        table = plain_table("logical date", "data interval", "existing run", "action")
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
    table = plain_table("backfill", "dag", "range", "state", "done", "failed", "running", "pending")
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
@output_option
@handle_errors
def backfill_list(dag_id: str | None, output: str) -> None:
    """Backfills, newest first, with their progress."""
    from millstream.store import backfills as backfills_q

    env = Env(None)
    table = plain_table("id", "dag", "range", "state", "done", "failed", "running", "pending")
    data = []
    with env.store.read() as conn:
        for b in backfills_q.list_all(conn, dag_id):
            p = backfills_q.progress(conn, b["id"])
            table.add_row(*_backfill_cells(b, p))
            data.append(
                {
                    "id": b["id"],
                    "dag_id": b["dag_id"],
                    "from_date": b["from_date"].isoformat() if b["from_date"] else None,
                    "to_date": b["to_date"].isoformat() if b["to_date"] else None,
                    "state": b["state"],
                    "success": p["success"],
                    "failed": p["failed"],
                    "running": p["running"],
                    "queued": p["queued"],
                }
            )
    if output == "json":
        echo_json(data)
        return
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
