"""Templating cases run under Airflow 3.3.2 and Millstream; each task records what it got.

The same file runs on both: only the import differs. Airflow's answers are kept in
airflow_3_3_2.json, written by tests/data/airflow/record.py with apache-airflow 3.3.2 in a scratch
venv outside the repo; tests/sdk/test_templating.py runs this file on Millstream and
expects the same run states, task states and outputs.
"""

import json
import os
from datetime import UTC, datetime

try:
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, task
except ImportError:
    from millstream import DAG, BashOperator, PythonOperator, task

HERE = os.path.dirname(os.path.abspath(__file__))
START = datetime(2024, 1, 1, tzinfo=UTC)


def record(name, value):
    with open(os.path.join(os.environ["TEMPLATES_OUT"], name + ".json"), "w") as f:
        json.dump(value, f, sort_keys=True, default=repr)
    return value


def show_python(*args, templates_dict=None, **kwargs):
    keep = {k: v for k, v in kwargs.items() if k in ("b", "c", "n", "l", "d")}
    return record(
        kwargs["task"].task_id,
        {"args": list(args), "kwargs": keep, "templates_dict": templates_dict},
    )


def show_native(n, l, d):  # noqa: E741
    return record(
        "native_python", {"n": [type(n).__name__, n], "l": [type(l).__name__, l], "d": [type(d).__name__, d]}
    )


with DAG(
    "templates_plain",
    schedule=None,
    start_date=START,
    params={"x": "px", "n": 3},
    template_searchpath=[os.path.join(HERE, "include")],
    user_defined_macros={"greet": lambda who: "hello " + who, "team": "data"},
    user_defined_filters={"shout": lambda s: s.upper() + "!"},
):
    BashOperator(
        task_id="bash_context",
        bash_command=(
            "echo {{ ds }} {{ ds_nodash }} {{ ts }} {{ ts_nodash }} {{ ts_nodash_with_tz }} "
            "{{ params.x }} {{ params.n + 1 }} {{ macros.ds_add(ds, 5) }} "
            "{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }} {{ logical_date | ds_nodash }} "
            "{{ dag.dag_id }} {{ task.task_id }} {{ ti.task_id }} {{ dag_run.dag_id }} "
            "{{ (logical_date + macros.timedelta(days=1)).strftime('%A') }} "
            "{{ macros.json.dumps({'a': 1}) }} > $TEMPLATES_OUT/bash_context.txt"
        ),
    )
    BashOperator(
        task_id="bash_env",
        bash_command='echo "$WHEN/$WHO/${HOME:-nohome}" > $TEMPLATES_OUT/bash_env.txt',
        env={
            "WHEN": "{{ ds_nodash }}",
            "WHO": "{{ params.x }}",
            "TEMPLATES_OUT": os.environ.get("TEMPLATES_OUT", ""),
        },
    )
    BashOperator(
        task_id="bash_append_env",
        bash_command='echo "$WHEN/${TEMPLATES_OUT:+has-out}" > $TEMPLATES_OUT/bash_append_env.txt',
        env={"WHEN": "{{ ds }}"},
        append_env=True,
    )
    BashOperator(task_id="bash_file", bash_command="script.sh")
    BashOperator(task_id="bash_searchpath", bash_command="from_include.sh")
    BashOperator(
        task_id="bash_macros",
        bash_command="echo '{{ greet(team) }} {{ params.x | shout }} {{ ds | shout }}' > $TEMPLATES_OUT/bash_macros.txt",
    )
    PythonOperator(
        task_id="python_fields",
        python_callable=show_python,
        op_args=["{{ ds }}", 7, ["{{ params.x }}", "{{ ds_nodash }}"]],
        op_kwargs={
            "b": "{{ params.x }}-{{ ds }}",
            "c": {"k": ["{{ task.task_id }}", 1]},
            "d": "{% if params.n > 2 %}big{% else %}small{% endif %}",
        },
        templates_dict={"a": "{{ ds_nodash }}", "file": "query.sql", "nested": {"q": "{{ params.n * 2 }}"}},
        templates_exts=[".sql"],
    )

    @task
    def taskflow_args(when, label, items=None):
        return record("taskflow_args", {"when": when, "label": label, "items": items})

    taskflow_args("{{ ds_nodash }}", label="run {{ params.x }}", items=["{{ ds }}", 1])

    @task
    def mapped(x):
        return x

    @task
    def collect(values):
        return record("mapped", sorted(values))

    collect(mapped.expand(x=["{{ ds }}", "plain"]))

    @task.bash
    def bash_decorated():
        return "echo {{ ds_nodash }}-{{ params.x }} > $TEMPLATES_OUT/bash_decorated.txt"

    bash_decorated()

with DAG(
    "templates_native", schedule=None, start_date=START, params={"n": 3}, render_template_as_native_obj=True
):
    PythonOperator(
        task_id="native_python",
        python_callable=show_native,
        op_kwargs={"n": "{{ params.n + 1 }}", "l": "{{ [1, 2, params.n] }}", "d": "{{ ds }}"},
    )

with DAG("templates_strict", schedule=None, start_date=START):
    BashOperator(task_id="undefined_name", bash_command="echo {{ no_such_name }}")
    BashOperator(task_id="syntax_error", bash_command="echo {{ ds ")
    BashOperator(task_id="fine", bash_command="echo ok")
