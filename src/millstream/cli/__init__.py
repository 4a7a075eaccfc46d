"""The ``millstream`` command: one module per command group, this file only puts them together.

Each group module defines its click group on its own and never imports this package's
``main``, so a group can be read, tested and changed without the rest.
"""

from __future__ import annotations

import logging
import os

import click

from millstream.cli import (
    api_server,
    assets,
    backfill,
    celery,
    config,
    connections,
    dags,
    dags_info,  # noqa: F401 - registers show, details, next-execution, report, reserialize
    dags_test,  # noqa: F401 - registers `dags test` on the dags group
    db,
    pools,
    scheduler,
    standalone,
    tasks,
    tasks_info,  # noqa: F401 - registers `tasks test`, `tasks list`, `tasks state`
    users,
    variables,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="millstream")
def main() -> None:
    """Millstream: pipelines with Airflow's TaskFlow API, none of the weight."""
    logging.basicConfig(
        level=os.environ.get("MILLSTREAM_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _command in (
    db.db,
    dags.dags,  # dags_test adds its command to this group
    tasks.tasks,
    pools.pools,
    celery.celery,
    config.config,
    assets.assets,
    backfill.backfill,
    users.users,
    variables.variables,
    connections.connections,
    connections.rotate_fernet_key,
    api_server.api_server,
    scheduler.scheduler_cmd,
    scheduler.triggerer_cmd,
    standalone.standalone,
):
    main.add_command(_command)


__all__ = ["main"]
