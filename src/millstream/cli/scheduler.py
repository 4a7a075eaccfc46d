"""``millstream scheduler``: the scheduler process, and how every process command builds one."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from millstream.cli.env import Env, dags_folder_option, safe_url
from millstream.cli.output import console, handle_errors
from millstream.settings import Settings
from millstream.store import Store
from millstream.worker import logformat, tracing


def build_scheduler(
    settings: Settings, store: Store, listener: Callable[[str, dict[str, Any]], None] | None = None
) -> Any:
    from millstream.executors.local import LocalExecutor
    from millstream.scheduler import metrics
    from millstream.scheduler.loop import Scheduler
    from millstream.scheduler.parsing import DagFolder

    tracing.configure(settings, export_process=True)  # [traces] otel_on: run, instance, attempt spans
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
        triggerer_capacity=settings.triggerer_capacity,
        metrics=metrics.from_settings(settings),
    )


def announce(text: str) -> None:
    """A process command's first line: printed, or with JSON logs a log record like the rest."""
    if logformat.json_logs():
        log = logging.getLogger("millstream.cli")
        log.setLevel(logging.INFO)
        log.info(text)
    else:
        console.print(text)


def run_until_signal(scheduler: Any, home: Path) -> None:
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


@click.command("scheduler")
@dags_folder_option
@handle_errors
def scheduler_cmd(dags_folder: str | None) -> None:
    """Run the scheduler with the local executor until Ctrl-C."""
    env = Env(dags_folder)
    logformat.setup(env.settings)
    logging.getLogger("millstream").setLevel(logging.INFO)
    announce(
        f"Scheduler: DAGs from {env.settings.dags_folder}, database {safe_url(env.settings.database_url)}"
    )
    run_until_signal(build_scheduler(env.settings, env.store), env.settings.home)


@click.command("triggerer")
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=None,
    help="Triggers this process runs at once (default: the triggerer.triggerer_capacity setting).",
)
@dags_folder_option
@handle_errors
def triggerer_cmd(capacity: int | None, dags_folder: str | None) -> None:
    """Run deferred tasks' triggers until Ctrl-C, beside the schedulers (scale-out).

    Several may run at once: each claims triggers nobody runs, and takes over those of
    a triggerer that stopped beating. Set triggerer.triggerer_capacity = 0 for the
    schedulers to leave every trigger to these processes."""
    from millstream.scheduler.triggerer import Triggerer

    env = Env(dags_folder)
    logformat.setup(env.settings)
    logging.getLogger("millstream").setLevel(logging.INFO)
    cap = capacity or env.settings.triggerer_capacity or 1000
    announce(f"Triggerer: up to {cap} triggers, database {safe_url(env.settings.database_url)}")
    triggerer = Triggerer(
        env.store,
        capacity=cap,
        heartbeat_timeout=env.settings.heartbeat_timeout,
        poll_interval=env.settings.poll_interval,
        dags_folder=str(env.settings.dags_folder),
    )

    def stop(signum: int, frame: Any) -> None:
        triggerer.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    triggerer.run_forever()
