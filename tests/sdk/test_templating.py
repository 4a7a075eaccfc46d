"""Jinja templating of task fields, checked against what Airflow 3.3.2 renders.

tests/data/templating/airflow_3_3_2.json was written by tests/data/airflow/record.py, with
apache-airflow 3.3.2 in a scratch venv outside the repo, from the same DAG file.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import millstream
from millstream import DAG, BaseOperator, BashOperator, PythonOperator, task
from millstream.core.states import RunState, TaskState
from millstream.errors import DagDefinitionError
from millstream.sdk.templating import Renderer, ds_add, ds_format

DATA = Path(__file__).resolve().parents[1] / "data" / "templating"
AIRFLOW = json.loads((DATA / "airflow_3_3_2.json").read_text())
DAY = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def millstream_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("templates_out")
    mp = pytest.MonkeyPatch()
    mp.setenv("TEMPLATES_OUT", str(out))  # read at parse time (bash_env) and run time
    try:
        loaded = millstream.load_dags(DATA / "dag_templates.py")
        assert not loaded.errors, loaded.errors
        runs = {dag_id: d.test(logical_date=DAY) for dag_id, d in loaded.dags.items()}
    finally:
        mp.undo()
    outputs = {}
    for path in sorted(out.iterdir()):
        text = path.read_text()
        outputs[path.name] = json.loads(text) if path.suffix == ".json" else text
    return runs, outputs


@pytest.mark.parametrize("dag_id", sorted(AIRFLOW["states"]))
def test_run_and_task_states_match_airflow(millstream_runs, dag_id):
    runs, _ = millstream_runs
    run = runs[dag_id]
    expected = AIRFLOW["states"][dag_id]
    assert run.state.value == expected["run"]
    got = {f"{t.task_id}[{t.map_index}]": t.state.value for t in run.task_instances}
    assert got == expected["tasks"]


@pytest.mark.parametrize("name", sorted(AIRFLOW["outputs"]))
def test_rendered_values_match_airflow(millstream_runs, name):
    _, outputs = millstream_runs
    assert outputs.get(name) == AIRFLOW["outputs"][name]


def test_render_failures_name_the_dag_task_field_line_and_template(millstream_runs):
    runs, _ = millstream_runs
    run = runs["templates_strict"]
    undefined = run.ti("undefined_name").reason
    assert "task 'undefined_name' of DAG 'templates_strict'" in undefined
    assert "dag_templates.py:" in undefined
    assert "field 'bash_command'" in undefined
    assert "'no_such_name' is undefined" in undefined
    assert "template: echo {{ no_such_name }}" in undefined
    syntax = run.ti("syntax_error").reason
    assert "syntax error" in syntax and "template: echo {{ ds " in syntax
    assert run.ti("fine").state is TaskState.SUCCESS


def test_a_missing_template_file_fails_the_attempt_and_says_where_it_looked(tmp_path):
    with DAG("missing_file", schedule=None, start_date=DAY, template_searchpath=str(tmp_path)) as d:
        BashOperator(task_id="run", bash_command="nowhere.sh")
        BashOperator(task_id="other", bash_command="echo fine")
    run = d.test(logical_date=DAY)
    reason = run.ti("run").reason
    assert run.ti("run").state is TaskState.FAILED
    assert "'nowhere.sh'" in reason and str(tmp_path) in reason and "template_searchpath" in reason
    assert run.ti("other").state is TaskState.SUCCESS


def test_template_fields_must_name_attributes_at_load_time():
    class Broken(BaseOperator):
        template_fields = ("query", "tpyo")

        def __init__(self, *, query, **kwargs):
            super().__init__(**kwargs)
            self.query = query

        def execute(self, context):
            return self.query

    with pytest.raises(DagDefinitionError) as e, DAG("broken_fields", schedule=None, start_date=DAY):
        Broken(task_id="b", query="select 1")
    assert "Broken.template_fields names 'tpyo'" in str(e.value)
    assert f"{__file__}:" in str(e.value)  # the line that created the operator


def test_results_of_other_tasks_are_not_rendered_again():
    with DAG("no_rerender", schedule=None, start_date=DAY) as d:

        @task
        def produce():
            return "{{ ds }} stays"

        @task
        def consume(value, literal):
            return [value, literal]

        consume(produce(), "{{ ds }}")
    run = d.test(logical_date=DAY)
    assert run.state is RunState.SUCCESS
    assert "['{{ ds }} stays', '2024-01-02']" in run.ti("consume").log


def test_nested_objects_with_template_fields_are_rendered_in_a_copy():
    class Query:
        template_fields = ("sql",)

        def __init__(self, sql):
            self.sql = sql

    q = Query("select '{{ ds }}'")
    seen = []
    with DAG("nested", schedule=None, start_date=DAY) as d:
        PythonOperator(task_id="p", python_callable=lambda query: seen.append(query.sql), op_args=[q])
    assert d.test(logical_date=DAY).state is RunState.SUCCESS
    assert seen == ["select '2024-01-02'"]
    assert q.sql == "select '{{ ds }}'"  # the DAG's own object is left as written


def test_template_undefined_lets_missing_names_render_empty():
    import jinja2

    with DAG("lenient", schedule=None, start_date=DAY, template_undefined=jinja2.Undefined) as d:
        PythonOperator(task_id="p", python_callable=lambda v: print(f"<{v}>"), op_args=["{{ nothing }}x"])
    run = d.test(logical_date=DAY)
    assert run.state is RunState.SUCCESS and "<x>" in run.ti("p").log


def test_a_custom_operator_renders_files_by_its_template_ext(tmp_path):
    (tmp_path / "q.sql").write_text("select * from t where ds = '{{ ds }}'\n")

    class Sql(BaseOperator):
        template_fields = ("sql",)
        template_ext = (".sql",)

        def __init__(self, *, sql, **kwargs):
            super().__init__(**kwargs)
            self.sql = sql

        def execute(self, context):
            print(f"SQL={self.sql!r}")

    with DAG("sqlfile", schedule=None, start_date=DAY, template_searchpath=[str(tmp_path)]) as d:
        Sql(task_id="s", sql="q.sql")
    run = d.test(logical_date=DAY)
    # Airflow's Jinja options drop the file's trailing newline (keep_trailing_newline is off).
    assert "SQL=\"select * from t where ds = '2024-01-02'\"" in run.ti("s").log


def test_plain_strings_are_returned_as_they_are_without_compiling():
    with DAG("plain", schedule=None, start_date=DAY) as d:
        pass
    r = Renderer(d, {"ds": "2024-01-02"})
    value = "no markup here"
    assert r.render(value) is value
    assert r.render({"a": ["{{ ds }}", 1]}) == {"a": ["2024-01-02", 1]}
    assert r.env.compiled_strings.keys() == {"{{ ds }}"}


def test_macros():
    assert ds_add("2024-01-02", 5) == "2024-01-07"
    assert ds_add("2024-01-02", -2) == "2023-12-31"
    assert ds_format("2024-01-02", "%Y-%m-%d", "%d/%m/%Y") == "02/01/2024"
