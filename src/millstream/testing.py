"""Running a DAG in this process: ``dag.test()`` and ``millstream dags test``.

This is the real engine — scheduler, planner, store, worker — with an in-memory SQLite
store and the inline executor; nothing is simplified for tests.

``RunResult`` and ``TaskInstanceResult`` are defined in :mod:`millstream.sdk.results`
(so the authoring layer can name them without importing the engine) and re-exported here.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from millstream import control
from millstream.core.model import DagSpec
from millstream.core.states import TERMINAL_RUN_STATES, RunState, TaskState
from millstream.executors.inline import InlineExecutor
from millstream.scheduler.loop import Scheduler
from millstream.scheduler.parsing import Parsed
from millstream.sdk.results import RunResult, TaskInstanceResult
from millstream.store import Store
from millstream.store import rendered as rendered_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.worker.callbacks import InlineCallbackRunner
from millstream.worker.log_echo import Echo
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
    mark_success_pattern: str | re.Pattern[str] | None = None,
    echo: Echo | None = None,
    store: Store | None = None,
    logs_folder: str | None = None,
    result_store_url: str | None = None,
    file_dags: Sequence[DAG] = (),
) -> RunResult:
    """Run one run of ``dag`` to its end in this process.

    By default everything lives in an in-memory store and a temporary log folder that
    are gone afterwards (``dag.test()``). Given a ``store`` (and ``logs_folder``), the
    run is recorded there like any other, so ``tasks logs`` and the UI show it later;
    ``file_dags`` are the other DAGs of the same file, recorded with it so that saving
    one DAG does not retire its neighbours.

    ``mark_success_pattern``: task ids that fully match are marked successful without
    running (Airflow's ``dag.test(mark_success_pattern=...)``). ``echo`` receives each
    task log line as it is written.
    """
    own_store = store is None
    db = Store.memory() if store is None else store
    logs = logs_folder or tempfile.mkdtemp(prefix="millstream-test-logs-")
    tracebacks: dict[tuple[str, int], str] = {}

    def hear(kind: str, data: dict[str, Any]) -> None:
        if kind == "ti_finished" and data.get("traceback"):
            tracebacks[(data["task_id"], data["map_index"])] = data["traceback"]
        if listener is not None:
            listener(kind, data)

    pattern = (
        re.compile(mark_success_pattern) if isinstance(mark_success_pattern, str) else mark_success_pattern
    )
    scheduler: Scheduler | None = None
    try:
        reader = ResultReader(db)
        executor = InlineExecutor(lambda fileloc, dag_id: dag, reader, mark_success=pattern, echo=echo)
        scheduler = Scheduler(
            db,
            executor,
            logs_folder=logs,
            result_store_url=result_store_url or os.path.join(logs, "results"),
            paused_on_creation=True,  # only the triggered run: the timetable must not add its own
            max_map_length=max_map_length,
            listener=hear,
            callbacks=InlineCallbackRunner(lambda fileloc, dag_id: dag),
        )
        spec = dag.to_spec()
        specs = [spec, *(d.to_spec() for d in file_dags if d.dag_id != dag.dag_id)]
        scheduler.record_parsed([Parsed(spec.fileloc, specs)])
        run_id = control.trigger(db, dag.dag_id, conf=conf, logical_date=logical_date)
        scheduler.start_queued(scheduler.clock())
        with db.read() as conn:
            run_pk = runs_q.get_run(conn, dag.dag_id, run_id)["id"]
        if run_pk in scheduler.runs:
            scheduler.run_until(lambda: run_pk not in scheduler.runs)
        else:  # a scheduler sharing the store started it first: it runs there; wait for it
            _wait_finished(db, dag.dag_id, run_id)
        return _result(db, spec, dag.dag_id, run_id, run_pk, logs, tracebacks)
    finally:
        if scheduler is not None:
            scheduler.close()
        if own_store:
            db.dispose()
        if logs_folder is None:  # only the temporary folder made here; never a given one
            shutil.rmtree(logs, ignore_errors=True)


def _wait_finished(db: Store, dag_id: str, run_id: str, timeout: float = 24 * 3600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.read() as conn:
            if RunState(runs_q.get_run(conn, dag_id, run_id)["state"]) in TERMINAL_RUN_STATES:
                return
        time.sleep(0.5)  # another process's run: nothing to wait on but the store
    raise TimeoutError(f"run {run_id!r} of {dag_id!r} did not finish within {timeout:.0f}s")


def _result(
    db: Store,
    spec: DagSpec,
    dag_id: str,
    run_id: str,
    run_pk: int,
    logs: str,
    tracebacks: Mapping[tuple[str, int], str],
) -> RunResult:
    with db.read() as conn:
        run = runs_q.get_run(conn, dag_id, run_id)
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
                read_log(log_path(logs, dag_id, run_id, r["task_id"], r["map_index"], n))
                for n in range(1, r["try_number"] + 1)
            ),
            reason=r["state_reason"],
            is_setup=spec.task(r["task_id"]).is_setup,
            is_teardown=spec.task(r["task_id"]).is_teardown,
            rendered=rendered.get((r["task_id"], r["map_index"])),
            traceback=tracebacks.get((r["task_id"], r["map_index"])),
        )
        for r in rows
    ]
    return RunResult(dag_id, run_id, RunState(run["state"]), tis, state_reason=run["state_reason"])
