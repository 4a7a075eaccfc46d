"""Running a DAG in this process: ``dag.test()`` and ``millstream dags test``.

This is the real engine — scheduler, planner, store, worker — with an in-memory SQLite
store and the inline executor; nothing is simplified for tests.

``RunResult`` and ``TaskInstanceResult`` are defined in :mod:`millstream.sdk.results`
(so the authoring layer can name them without importing the engine) and re-exported here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from millstream import control
from millstream.core.states import RunState, TaskState
from millstream.executors.inline import InlineExecutor
from millstream.scheduler.loop import Scheduler
from millstream.scheduler.parsing import Parsed
from millstream.sdk.results import RunResult, TaskInstanceResult
from millstream.store import Store
from millstream.store import rendered as rendered_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.worker.callbacks import InlineCallbackRunner
from millstream.worker.results import ResultReader
from millstream.worker.runner import log_path, read_log

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG

__all__ = ["Listener", "RunResult", "TaskInstanceResult", "run_dag_inline"]

Listener = Callable[[str, dict[str, Any]], None]


def run_dag_inline(
    dag: DAG,
    *,
    conf: Mapping[str, Any] | None = None,
    logical_date: datetime | None = None,
    listener: Listener | None = None,
    max_map_length: int = 100_000,
) -> RunResult:
    store = Store.memory()
    logs = tempfile.mkdtemp(prefix="millstream-test-logs-")
    scheduler: Scheduler | None = None
    try:
        reader = ResultReader(store)
        executor = InlineExecutor(lambda fileloc, dag_id: dag, reader)
        scheduler = Scheduler(
            store,
            executor,
            logs_folder=logs,
            result_store_url=os.path.join(logs, "results"),
            paused_on_creation=True,  # only the triggered run: the timetable must not add its own
            max_map_length=max_map_length,
            listener=listener,
            callbacks=InlineCallbackRunner(lambda fileloc, dag_id: dag),
        )
        spec = dag.to_spec()
        scheduler.record_parsed([Parsed(spec.fileloc, [spec])])
        run_id = control.trigger(store, dag.dag_id, conf=conf, logical_date=logical_date)
        scheduler.start_queued(scheduler.clock())
        with store.read() as conn:
            run_pk = runs_q.get_run(conn, dag.dag_id, run_id)["id"]
        scheduler.run_until(lambda: run_pk not in scheduler.runs)
        with store.read() as conn:
            run = runs_q.get_run(conn, dag.dag_id, run_id)
            rows = ti_q.list_for_run(conn, run_pk)
            rendered = rendered_q.for_run(conn, run_pk)
        order = {t: i for i, t in enumerate(spec.task_ids)}
        rows = sorted(rows, key=lambda r: (order.get(r["task_id"], 0), r["map_index"]))
        tis = [
            TaskInstanceResult(
                task_id=r["task_id"],
                map_index=r["map_index"],
                state=TaskState(r["state"]),
                try_number=r["try_number"],
                label=r["label"],
                log="\n".join(
                    read_log(log_path(logs, dag.dag_id, run_id, r["task_id"], r["map_index"], n))
                    for n in range(1, r["try_number"] + 1)
                ),
                reason=r["state_reason"],
                is_setup=spec.task(r["task_id"]).is_setup,
                is_teardown=spec.task(r["task_id"]).is_teardown,
                rendered=rendered.get((r["task_id"], r["map_index"])),
            )
            for r in rows
        ]
        return RunResult(dag.dag_id, run_id, RunState(run["state"]), tis)
    finally:
        if scheduler is not None:
            scheduler.close()
        store.dispose()
        shutil.rmtree(logs, ignore_errors=True)
