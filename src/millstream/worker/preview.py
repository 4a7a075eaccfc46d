"""Rendering a task's template fields without running it (``millstream tasks render``).

The context is the one an attempt would get: the run's own (its conf, params, data
interval and results, so ``ti.xcom_pull`` finds them) when the run exists, else a manual
run's for the given logical date, as Airflow's ``tasks render`` does.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from typing import Any

from millstream.core.timetables import from_spec
from millstream.errors import NotFoundError
from millstream.sdk.dag import DAG
from millstream.sdk.params import resolve_params
from millstream.store import Store
from millstream.worker.item import WorkItem
from millstream.worker.rendering import prepare, rendered_fields
from millstream.worker.results import ResultReader
from millstream.worker.runner import _Resolver, build_context


def render_task(
    dag: DAG,
    task_id: str,
    store: Store,
    *,
    logical_date: datetime | None,
    map_index: int = -1,
    run: Any = None,
) -> dict[str, Any]:
    """Field name -> rendered value (secrets masked) for ``task_id`` of ``dag``."""
    if task_id not in dag.tasks:
        raise NotFoundError(f"DAG {dag.dag_id!r} has no task {task_id!r}; its tasks are {sorted(dag.tasks)}")
    task = dag.get_task(task_id)
    spec = dag.to_spec()
    if run is not None:
        run_pk, run_id, run_type, conf = run["id"], run["run_id"], run["run_type"], dict(run["conf"] or {})
        ld, start, end = run["logical_date"], run["data_interval_start"], run["data_interval_end"]
    else:
        assert logical_date is not None
        info = from_spec(spec.timetable).manual_info(logical_date)
        run_pk, run_id, run_type, conf = 0, f"manual__{logical_date.isoformat()}", "manual", {}
        ld, start, end = logical_date, info.interval_start, info.interval_end
    item = WorkItem(
        run_pk=run_pk,
        dag_id=dag.dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        try_number=1,
        fileloc=os.path.abspath(dag.filename) if dag.filename else "",
        run_type=run_type,
        logical_date=ld,
        data_interval_start=start,
        data_interval_end=end,
        conf=conf,
        params=resolve_params(spec.params, conf),
        log_path=os.path.join(tempfile.gettempdir(), "millstream-render-preview.log"),
    )
    reader = ResultReader(store)
    ctx = build_context(item, dag, task, reader)
    resolver = _Resolver(item, task, reader)
    op, _ = prepare(task, ctx, resolver.value, resolver.mapped)
    return rendered_fields(op)
