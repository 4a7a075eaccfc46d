"""What a command needs around it: settings, the store, the DAG folder option, and dates.

The store is opened on first use, so commands that only read settings (``config``) never
touch the database.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import click

from millstream.errors import MillstreamError
from millstream.settings import Settings
from millstream.store import Store, ensure_schema


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
            from millstream.store.crypto import ensure_key

            ensure_key(self.settings)  # the Fernet key of secrets at rest, made on first start
        return self._store

    def _folder(self) -> Any:
        from millstream.scheduler.parsing import DagFolder

        return DagFolder(self.settings.dags_folder, self.settings.dag_file_timeout)

    def sync_dags(self) -> list[Any]:
        """Parse every file of the DAG folder and record it; returns each file's outcome."""
        from millstream.scheduler.dagsync import sync_folder

        return sync_folder(
            self.store, self._folder(), paused_on_creation=self.settings.paused_on_creation
        ).parsed

    def sync_dag(self, dag_id: str) -> list[Any]:
        """Bring one DAG up to date for a command about it: its own file is parsed again
        only if it changed, the other files not at all (one slow file does not hold up
        every ``dags trigger``). A DAG the store does not know yet is looked for in the
        whole folder. Returns the outcomes of the files parsed."""
        from millstream.scheduler.dagsync import sync_dag

        synced = sync_dag(
            self.store, dag_id, self._folder(), paused_on_creation=self.settings.paused_on_creation
        )
        return self.sync_dags() if synced is None else synced.parsed

    def know_dag(self, dag_id: str) -> None:
        """For a command that needs only the DAG's row (pause, unpause): nothing is parsed
        unless the store has never seen the DAG, then the folder is looked through."""
        from millstream.errors import NotFoundError
        from millstream.store import dags as dags_q

        with self.store.read() as conn:
            try:
                dags_q.get_dag(conn, dag_id)
                return
            except NotFoundError:
                pass
        self.sync_dags()


def _airflow_imports(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:  # the loader, here and in every child process, reads it from the environment
        current = os.environ.get("MILLSTREAM__CORE__AIRFLOW_IMPORTS", "").strip().lower()
        os.environ["MILLSTREAM__CORE__AIRFLOW_IMPORTS"] = "force" if current == "force" else "true"


def dags_folder_option(f: Any) -> Any:
    """``--dags-folder/-d`` and ``--airflow-imports``: what every command that loads DAGs takes."""
    f = click.option(
        "--airflow-imports",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_airflow_imports,
        help="Load DAG files that import from airflow through Millstream's import hook "
        "(setting core.airflow_imports).",
    )(f)
    return click.option(
        "--dags-folder",
        "-d",
        default=None,
        envvar="MILLSTREAM_DAGS_FOLDER",
        help="Folder (or file) of DAG files. Default: $MILLSTREAM_HOME/dags.",
    )(f)


def safe_url(url: str) -> str:
    """A database URL fit to print: the password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def parse_date(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 option value; a date without a zone is taken as UTC, as Airflow does."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MillstreamError(f"{option} {value!r} is not a date; use ISO 8601, e.g. 2025-01-31") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
