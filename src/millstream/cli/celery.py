"""``millstream celery``: run a Celery worker, and ask the broker which workers answer."""

from __future__ import annotations

import os

import click

from millstream.cli.output import console, echo_json, handle_errors, output_option, plain_table
from millstream.errors import MillstreamError
from millstream.settings import Settings
from millstream.store import Store, ensure_schema
from millstream.worker import logformat


@click.group()
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
    logformat.setup(settings)
    ensure_schema(Store(settings.database_url))
    names = [q.strip() for q in (queues or settings.default_queue).split(",") if q.strip()]
    worker_main(
        names, concurrency or max(2, os.cpu_count() or 2), settings.broker_url, settings.default_queue
    )


@celery.command("status")
@output_option
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
        echo_json(workers)
        return
    if not workers:
        console.print(f"No Celery worker answered on {mask(settings.broker_url)}.")
        return
    table = plain_table("worker", "queues", "concurrency", "active")
    for w in workers:
        table.add_row(w["worker"], ", ".join(w["queues"]), str(w["concurrency"]), str(w["active"]))
    console.print(table)
