"""``millstream assets``: assets, their events, who produces and consumes them."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape

from millstream import control
from millstream.cli.env import Env, dags_folder_option
from millstream.cli.output import console, echo_json, fmt_dt, handle_errors, output_option, plain_table
from millstream.errors import MillstreamError
from millstream.store import dags as dags_q


@click.group()
def assets() -> None:
    """Assets: their events, who produces and consumes them, and events from outside."""


@assets.command("list")
@output_option
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
        echo_json(data)
        return
    table = plain_table("asset", "uri", "events", "last event", "produced by", "schedules")
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
@output_option
@handle_errors
def assets_events(name: str, limit: int, output: str) -> None:
    """The latest events of asset NAME, newest first."""
    from millstream.store import assets as assets_q

    with Env(None).store.read() as conn:
        rows = assets_q.events_of(conn, name, limit=limit)
    if output == "json":
        data = [{**dict(r), "timestamp": r["timestamp"].isoformat()} for r in rows]
        echo_json(data)
        return
    table = plain_table("id", "time", "source", "extra")
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
    table = plain_table("event", "asset", "as", "time", "source", "extra")
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
