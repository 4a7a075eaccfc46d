"""``millstream standalone``: everything in one process, following a triggered run."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from millstream import control
from millstream.cli.env import Env, dags_folder_option, safe_url
from millstream.cli.output import console, handle_errors, styled
from millstream.cli.scheduler import build_scheduler, run_until_signal
from millstream.cli.users import first_admin
from millstream.errors import MillstreamError
from millstream.settings import Settings
from millstream.store import Store
from millstream.worker import logformat


@click.command("standalone")
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
    logformat.setup(settings)  # the scheduler's and API's log; what standalone prints stays text
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

    scheduler = build_scheduler(settings, env.store, listen)
    console.print("[bold]Millstream standalone[/]")
    console.print(f"  home      {settings.home}")
    console.print(f"  DAGs      {settings.dags_folder}")
    console.print(f"  database  {safe_url(settings.database_url)}")
    console.print(f"  logs      {settings.logs_folder}")
    api = None if no_api else _start_api(env, port or settings.port, scheduler.state.metrics.registry)
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
        run_until_signal(scheduler, settings.home)
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


def _start_api(env: Env, port: int, metrics: Any = None) -> _ApiThread:
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
    # The scheduler runs in this process: its event metrics are served beside the store's.
    api = _ApiThread(serve(create_app(env.settings, env.store, metrics=metrics), host, port))
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
