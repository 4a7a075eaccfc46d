"""What rendering template fields adds to one task instance, measured where the worker
does it: ``worker.rendering.prepare`` against the context ``build_context`` gives.

Three cases: an operator with no template fields (EmptyOperator), a ``@task`` whose
call arguments hold no template markers (the common TaskFlow case: the fast path), and
a custom operator with three template fields, each a Jinja template (compiled once per
worker, then looked up). The figure is the median cost per instance over repeated
batches, in microseconds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime

from common import report

from millstream import DAG, BaseOperator, EmptyOperator, task
from millstream.store import Store, ensure_schema
from millstream.worker.item import WorkItem
from millstream.worker.rendering import prepare
from millstream.worker.results import ResultReader
from millstream.worker.runner import _Resolver, build_context


class Three(BaseOperator):
    template_fields = ("sql", "target", "note")

    def __init__(self, *, sql: str, target: str, note: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.sql, self.target, self.note = sql, target, note

    def execute(self, context: object) -> None:
        return None


def _dag() -> DAG:
    with DAG("bench_render", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC)) as dag:
        EmptyOperator(task_id="empty")

        @task
        def plain(path: str, n: int) -> int:
            return n

        plain("data/file_000001.csv", 3)
        Three(
            task_id="three",
            sql="select * from t where day = '{{ ds }}'",
            target="out/{{ ds_nodash }}/{{ params.region }}",
            note="run {{ run_id }} try {{ ti.try_number }}",
            params={"region": "eu"},
        )
    return dag


def _per_instance_us(dag: DAG, task_id: str, reader: ResultReader, batches: int = 15, n: int = 2000) -> float:
    day = datetime(2025, 3, 4, tzinfo=UTC)
    item = WorkItem(
        run_pk=1,
        dag_id=dag.dag_id,
        run_id="scheduled__2025-03-04",
        task_id=task_id,
        map_index=-1,
        try_number=1,
        fileloc=__file__,
        run_type="scheduled",
        logical_date=day,
        data_interval_start=day,
        data_interval_end=day,
        conf={},
        params={"region": "eu"},
        log_path="/dev/null",
    )
    t = dag.get_task(task_id)
    ctx = build_context(item, dag, t, reader)
    resolver = _Resolver(item, t, reader)
    prepare(t, ctx, resolver.value, resolver.mapped)  # warm: compile the templates once
    samples = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            prepare(t, ctx, resolver.value, resolver.mapped)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    dag = _dag()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        ensure_schema(store)
        reader = ResultReader(store)
        figures = [_per_instance_us(dag, t, reader) for t in ("empty", "plain", "three")]
    report("render: operator without template fields, per instance", figures[0], "us", 20)
    report("render: @task, arguments without templates, per instance", figures[1], "us", 20)
    report("render: three Jinja template fields, per instance", figures[2], "us", 100)


if __name__ == "__main__":
    main()
