"""What a task instance's page links to beyond its own DAG: the run a
``TriggerDagRunOperator`` started, the run an ``ExternalTaskSensor`` waits for (Airflow's
operator extra links), and, for a deferred instance, the trigger it waits on."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection

from millstream.errors import NotFoundError
from millstream.sdk.deferral import SCHEDULER_EVALUATED
from millstream.store import cross_dag
from millstream.store import dags as dags_q
from millstream.store import results as results_q
from millstream.store import runs as runs_q
from millstream.store import triggers as triggers_q


def _run_href(dag_id: str, run_id: str) -> str:
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_links(
    conn: Connection, dag_id: str, run_id: str, task_id: str, map_index: int
) -> list[tuple[str, str]]:
    """(label, href) pairs; empty for a task that points nowhere else."""
    run = runs_q.get_run(conn, dag_id, run_id)
    task = dags_q.spec_for_version(conn, run["dag_version_id"]).task(task_id)
    ext = task.external or {}
    if ext.get("kind") == "trigger":
        raw = results_q.get_one(conn, run["id"], task_id, map_index, "trigger_run_id")
        if raw is not None:
            child = json.loads(raw)
            return [(f"Triggered DAG run: {ext['dag_id']} / {child}", _run_href(str(ext["dag_id"]), child))]
        return [(f"Triggers DAG {ext['dag_id']}", f"/dags/{quote(str(ext['dag_id']), safe='')}")]
    if ext.get("kind") in ("sensor", "marker"):
        other = str(ext["dag_id"])
        found = cross_dag.run_at(conn, other, run["logical_date"])
        what = "External DAG run" if ext["kind"] == "sensor" else "Marked DAG run"
        if found is not None:
            return [(f"{what}: {other} / {found['run_id']}", _run_href(other, found["run_id"]))]
        return [(f"External DAG {other} (no run at this logical date yet)", f"/dags/{quote(other, safe='')}")]
    return []


def trigger_facts(conn: Connection, run_pk: int, task_id: str, map_index: int) -> dict[str, Any] | None:
    """What a deferred instance waits on, for the page: class, triggerer, timeout."""
    row = triggers_q.get(conn, run_pk, task_id, map_index)
    if row is None:
        return None
    return {
        "classpath": row["classpath"],
        "method_name": row["method_name"],
        "triggerer": row["triggerer_id"]
        or ("the scheduler" if row["classpath"] in SCHEDULER_EVALUATED else "none yet"),
        "timeout_at": row["timeout_at"],
        "fired_at": row["fired_at"],
    }


def for_page(conn: Connection, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    try:
        run = runs_q.get_run(conn, dag_id, run_id)
        return {
            "links": task_links(conn, dag_id, run_id, task_id, map_index),
            "trigger": trigger_facts(conn, run["id"], task_id, map_index),
        }
    except (NotFoundError, KeyError):
        return {"links": [], "trigger": None}
