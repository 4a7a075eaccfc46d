"""ti.xcom_push, every form of ti.xcom_pull, and an XComArg formatted into a template
field; the last task writes what it pulled to ``$TEMPLATES_OUT/pulled.json``.

The same file runs on Airflow 3.3.2 (its answers are in airflow_3_3_2.json, written by
tests/data/airflow/record.py) and on Millstream.
"""

import json
import os
from datetime import UTC, datetime

try:
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, XComArg, task
except ImportError:
    from millstream import DAG, BashOperator, XComArg, task

OUT = os.environ.get("TEMPLATES_OUT", "/tmp/xcom-push-pull")

with DAG("xcom_push_pull", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)):

    @task
    def push(ti=None):
        ti.xcom_push(key="extra", value={"rows": 3})
        ti.xcom_push(key="nothing", value=None)
        return "returned"

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def square(n, ti=None):
        ti.xcom_push(key="label", value=f"n={n}")
        return n * n

    bash = BashOperator(
        task_id="bash",
        bash_command="echo {{ ti.xcom_push(key='from_bash', value='pushed in a template') }}done",
    )
    formatted = BashOperator(
        task_id="formatted",
        bash_command=f"echo {XComArg(bash)}+{XComArg(bash, key='from_bash')}",
    )

    @task
    def pull(ti=None):
        got = {
            "one": ti.xcom_pull(task_ids="push"),
            "key": ti.xcom_pull(task_ids="push", key="extra"),
            "stored_none": ti.xcom_pull(task_ids="push", key="nothing", default="dflt"),
            "missing_default": ti.xcom_pull(task_ids="push", key="nope", default="dflt"),
            "missing": ti.xcom_pull(task_ids="push", key="nope"),
            "several": ti.xcom_pull(task_ids=["push", "bash"]),
            "mapped_all": list(ti.xcom_pull(task_ids="square")),
            "mapped_key": list(ti.xcom_pull(task_ids="square", key="label")),
            "one_index": ti.xcom_pull(task_ids="square", map_indexes=1),
            "indexes": ti.xcom_pull(task_ids="square", map_indexes=[2, 0]),
            "formatted": ti.xcom_pull(task_ids="formatted"),
            "own_dag": ti.xcom_pull(task_ids="push", dag_id="xcom_push_pull"),
        }
        with open(os.path.join(OUT, "pulled.json"), "w") as f:
            json.dump(got, f, sort_keys=True)

    squares = square.expand(n=numbers())
    bash >> formatted
    [push(), squares, formatted] >> pull()
