"""What the one-DAG commands (``dags show``, ``tasks list``, ``tasks test`` …) share: the
DAG's spec from the store, a run named by id or logical date, and Airflow's ``-B``.

A command about one DAG reads that DAG from the store, as Airflow reads its serialized
DAG; only the DAG's own file is parsed again, when its text changed, and the folder only
when the store has never seen the DAG (a first command before any scheduler ran).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import sqlalchemy as sa
from sqlalchemy import Connection

from millstream.cli.env import Env
from millstream.core.model import DagSpec
from millstream.errors import NotFoundError
from millstream.store import dags as dags_q
from millstream.store.tables import dag_run

#: Airflow's name for the bundle of the configured DAG folder: the only bundle there is here.
DAG_FOLDER_BUNDLE = "dags-folder"


def _check_bundles(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    other = [v for v in value if v != DAG_FOLDER_BUNDLE]
    if other:
        raise click.BadParameter(
            f"Millstream has one DAG bundle, {DAG_FOLDER_BUNDLE!r} (the DAG folder), not {other[0]!r}; "
            "point --dags-folder at another folder instead",
            ctx=ctx,
            param=param,
        )
    return value


def bundle_option(f: Any) -> Any:
    """Airflow's ``-B/--bundle-name``: accepted for the DAG folder's bundle, refused for others."""
    return click.option(
        "--bundle-name",
        "-B",
        multiple=True,
        expose_value=False,
        callback=_check_bundles,
        help=f"Airflow's DAG bundle; here only {DAG_FOLDER_BUNDLE!r}, the DAG folder.",
    )(f)


def dag_spec(env: Env, dag_id: str) -> tuple[sa.RowMapping, DagSpec]:
    """The DAG's row and latest spec, after its own file is parsed again if its text
    changed (the whole folder only when the store has never seen the DAG)."""
    env.sync_dag(dag_id)
    with env.store.read() as conn:
        try:
            row = dags_q.get_dag(conn, dag_id)
            _, spec = dags_q.latest_spec(conn, dag_id)
        except NotFoundError as e:
            raise NotFoundError(f"{e} (looked in {env.settings.dags_folder})") from None
    return row, spec


def parse_logical_date(value: str) -> datetime | None:
    """``value`` as a date if it is one (no zone means UTC, as in Airflow), else None."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def find_run(conn: Connection, dag_id: str, value: str) -> sa.RowMapping | None:
    """Airflow's ``logical_date_or_run_id``: the run with this id, else the run whose
    logical date this is; None when there is neither."""
    row = conn.execute(sa.select(dag_run).where(dag_run.c.dag_id == dag_id, dag_run.c.run_id == value))
    found = row.mappings().first()
    if found is not None:
        return found
    when = parse_logical_date(value)
    if when is None:
        return None
    rows = conn.execute(sa.select(dag_run).where(dag_run.c.dag_id == dag_id, dag_run.c.logical_date == when))
    return rows.mappings().first()
