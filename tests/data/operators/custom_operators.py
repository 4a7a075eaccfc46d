"""A custom operator (template fields, a template file, pre_execute) used plain and mapped,
and a custom sensor; the last task writes every result to ``<folder>/report.json``.

The same file runs on Airflow 3.3.2 (its answers are in airflow_3_3_2.json, written by
tests/data/airflow/record.py) and on Millstream. The tests run it under ``dag.test()``,
the scheduler with the local executor, and Celery workers, and expect Airflow's states
and report from each.
"""

import json
import os
from datetime import UTC, datetime

try:
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, PokeReturnValue, task
except ImportError:
    from millstream import DAG, BaseOperator, BaseSensorOperator, BashOperator, PokeReturnValue, task


class LoadOperator(BaseOperator):
    template_fields = ("sql", "target")
    template_ext = (".sql",)
    ui_color = "#cdf"

    def __init__(self, *, sql, target, **kwargs):
        super().__init__(**kwargs)
        self.sql = sql
        self.target = target
        self.prepared_for = None

    def pre_execute(self, context):
        self.prepared_for = context["ds"]

    def execute(self, context):
        return {"sql": self.sql.strip(), "target": self.target, "prepared_for": self.prepared_for}


class FileReadySensor(BaseSensorOperator):
    template_fields = ("path",)

    def __init__(self, *, path, **kwargs):
        super().__init__(**kwargs)
        self.path = path

    def poke(self, context):
        return PokeReturnValue(os.path.exists(self.path), xcom_value=os.path.basename(self.path))


with DAG(
    "custom_operators",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    params={"folder": os.environ.get("TEMPLATES_OUT", "/tmp/custom-operators")},
):
    make = BashOperator(
        task_id="make",
        bash_command="mkdir -p {{ params.folder }} && touch {{ params.folder }}/ready-{{ ds_nodash }}",
    )
    wait = FileReadySensor(
        task_id="wait", path="{{ params.folder }}/ready-{{ ds_nodash }}", poke_interval=0.05, timeout=60
    )
    load = LoadOperator(task_id="load", sql="load.sql", target="{{ params.folder }}/out")
    loads = LoadOperator.partial(task_id="loads", target="tbl_{{ ds_nodash }}").expand(
        sql=["select '{{ ds }}'", "select 1"]
    )

    @task
    def tables():
        return ["from xcom {{ ds }}", "plain"]

    from_xcom = LoadOperator.partial(task_id="from_xcom", sql="select 2").expand(target=tables())

    @task
    def report(sensed, one, many, from_results, params=None):
        out = {"sensed": sensed, "load": one, "loads": list(many), "from_xcom": list(from_results)}
        with open(os.path.join(params["folder"], "report.json"), "w") as f:
            json.dump(out, f, sort_keys=True)
        return out

    make >> wait >> [load, loads]
    report(wait.output, load.output, loads.output, from_xcom.output)
