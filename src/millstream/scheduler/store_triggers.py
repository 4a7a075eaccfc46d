"""Triggers that wait on other DAG runs (``DagStateTrigger``, ``WorkflowTrigger``), answered
by the scheduler from the store in its own turn: a question a triggerer would ask the
database every few seconds is one query here, with no second process to keep alive."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from millstream.errors import NotFoundError
from millstream.sdk.deferral import BaseTrigger
from millstream.sdk.standard.cross_dag import matching_count
from millstream.sdk.standard.triggers import DagStateTrigger, WorkflowTrigger
from millstream.store import cross_dag


def evaluate(conn: Connection, trigger: BaseTrigger) -> Any | None:
    """The event payload if the trigger's condition holds now, else None."""
    if isinstance(trigger, DagStateTrigger):
        return _dag_state(conn, trigger)
    if isinstance(trigger, WorkflowTrigger):
        return _workflow(conn, trigger)
    raise TypeError(f"{type(trigger).__name__} is not evaluated by the scheduler")


def _dag_state(conn: Connection, t: DagStateTrigger) -> Any | None:
    found: dict[str, str] = {}
    for run_id in t.run_ids or []:
        try:
            found[run_id] = cross_dag.dagrun_state(conn, t.dag_id, run_id)
        except NotFoundError:
            return None  # not created yet (or deleted): keep waiting
    if t.logical_dates:
        wanted = len(t.logical_dates)
        if cross_dag.dr_count(conn, t.dag_id, logical_dates=t.logical_dates, states=t.states) < wanted:
            return None
    if any(s not in t.states for s in found.values()):
        return None
    return {"dag_id": t.dag_id, "run_ids": t.run_ids, "states": found}


def _workflow(conn: Connection, t: WorkflowTrigger) -> Any | None:
    dates = t.logical_dates
    expected = len(dates) if dates else len(t.run_ids or [])
    ask = cross_dag.Questions(conn)

    def count(states: list[str]) -> float:
        return matching_count(
            ask,
            t.external_dag_id,
            task_ids=t.external_task_ids,
            group_id=t.external_task_group_id,
            dates=dates,
            run_ids=t.run_ids,
            states=states,
        )

    try:
        if t.failed_states and count(t.failed_states) > 0:
            return {"status": "failed"}
        if t.skipped_states and count(t.skipped_states) > 0:
            return {"status": "skipped"}
        if count(t.allowed_states) >= expected:
            return {"status": "success"}
    except NotFoundError as e:
        return {"status": "error", "error": str(e)}
    return None
