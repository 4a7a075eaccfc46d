"""Carrying out what ``TriggerDagRunOperator`` asks (a ``DagRunTriggerException``), as
Airflow 3's task runner does: create the run (or clear the existing one with
``reset_dag_run``), push its id as XCom ``trigger_run_id``, and with
``wait_for_completion`` wait for it — deferred on the scheduler, or polling here."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from millstream.errors import ConflictError, FailTask, NotFoundError, ParamValidationError, SkipTask
from millstream.sdk.deferral import TaskDeferred
from millstream.sdk.standard.cross_dag import DagRunTriggerException
from millstream.sdk.standard.triggers import DagStateTrigger
from millstream.store import cross_dag
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store.clearing import clear_run
from millstream.store.manual import create_manual_run
from millstream.worker.results import ResultReader


def trigger_dag_run(e: DagRunTriggerException, task_id: str, ti: Any, reader: ResultReader) -> None:
    store = reader.store
    what = f"TriggerDagRunOperator {task_id!r}: DAG {e.trigger_dag_id!r}"
    try:
        with store.begin() as conn:
            if e.fail_when_dag_is_paused and dags_q.get_dag(conn, e.trigger_dag_id)["is_paused"]:
                raise FailTask(f"{what} is paused (fail_when_dag_is_paused=True)")
            try:
                with conn.begin_nested():
                    create_manual_run(
                        conn,
                        e.trigger_dag_id,
                        run_id=e.dag_run_id,
                        conf=e.conf,
                        logical_date=e.logical_date,
                        now=datetime.now(UTC),
                    )
                print(f"Triggered DAG {e.trigger_dag_id} run {e.dag_run_id}")
            except ConflictError:
                if e.skip_when_already_exists:
                    raise SkipTask(
                        f"Dag Run {e.dag_run_id} already exists, skipping task as skip_when_already_exists "
                        "is set to True."
                    ) from None
                if not e.reset_dag_run:
                    raise FailTask(
                        f"{what} already has a run {e.dag_run_id!r}; set reset_dag_run=True to clear and "
                        "rerun it, or skip_when_already_exists=True to skip"
                    ) from None
                run = runs_q.get_run(conn, e.trigger_dag_id, e.dag_run_id)
                spec = dags_q.spec_for_version(conn, run["dag_version_id"])
                clear_run(conn, run, spec, set(spec.task_ids))
                print(
                    f"Cleared the existing run {e.dag_run_id} of DAG {e.trigger_dag_id} (reset_dag_run=True)"
                )
    except NotFoundError as err:
        raise FailTask(f"{what} cannot be triggered: {err}") from None
    except ParamValidationError as err:
        raise FailTask(f"{what} refused the conf: {err}") from None
    ti.xcom_push("trigger_run_id", e.dag_run_id)
    if not e.wait_for_completion:
        return
    if e.deferrable:
        raise TaskDeferred(
            trigger=DagStateTrigger(
                dag_id=e.trigger_dag_id,
                states=e.allowed_states + e.failed_states,
                run_ids=[e.dag_run_id],
                poll_interval=e.poke_interval,
            ),
            method_name="execute_complete",
        )
    while True:
        time.sleep(e.poke_interval)
        with store.read() as conn:
            state = cross_dag.dagrun_state(conn, e.trigger_dag_id, e.dag_run_id)
        if state in e.failed_states:
            # Not FailTask: a failed child is a failure retries apply to, as in Airflow.
            raise RuntimeError(f"{e.trigger_dag_id} failed with failed state {state}")
        if state in e.allowed_states:
            print(f"DagRun finished with allowed state {state}")
            return
        print(f"Waiting for DAG run {e.dag_run_id} of {e.trigger_dag_id}: {state}")
