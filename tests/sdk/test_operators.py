"""The operator model: BaseOperator subclasses, Airflow's operator arguments, and the
compatibility table that says what each argument does here."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from millstream import (
    DAG,
    BaseOperator,
    BaseSensorOperator,
    BashOperator,
    EmptyOperator,
    PythonOperator,
    task,
)
from millstream.core.priority import effective_weights
from millstream.core.states import RunState, TaskState
from millstream.errors import DagDefinitionError
from millstream.sdk import compat

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2024, 1, 2, tzinfo=UTC)


def test_the_compatibility_doc_is_generated_from_the_table():
    assert (ROOT / "docs" / "airflow-compatibility.md").read_text() == compat.markdown(), (
        "regenerate it: python -m millstream.sdk.compat > docs/airflow-compatibility.md"
    )


def test_the_table_covers_every_argument_of_airflows_base_operator():
    recorded = json.loads((ROOT / "tests" / "data" / "airflow" / "baseoperator_args.json").read_text())
    assert list(compat.OPERATOR_ARGUMENTS) == recorded


@pytest.mark.parametrize(
    "name, value",
    [
        (n, True if n == "wait_for_past_depends_before_skipping" else {"x": 1})
        for n, a in compat.OPERATOR_ARGUMENTS.items()
        if a.status == compat.REFUSED and a.refuse_if is not None and a.refuse_if({"x": 1})
    ],
)
def test_refused_arguments_fail_the_load_with_the_reason(name, value):
    with pytest.raises(ValueError) as e, DAG("refusals", schedule=None, start_date=DAY):
        EmptyOperator(task_id="t", **{name: value})
    assert f"{name}=" in str(e.value) and compat.OPERATOR_ARGUMENTS[name].note in str(e.value)


def test_airflows_default_values_of_refused_arguments_are_accepted():
    with DAG(
        "defaults", schedule=None, start_date=DAY, default_args={"depends_on_past": False, "email": None}
    ):
        EmptyOperator(task_id="t", wait_for_downstream=False, executor_config={}, sla=None)


def test_depends_on_past_and_wait_for_downstream_reach_the_scheduler():
    with DAG("past", schedule="@daily", start_date=DAY, default_args={"depends_on_past": True}) as dag:
        EmptyOperator(task_id="a", ignore_first_depends_on_past=True)
        EmptyOperator(task_id="b", depends_on_past=False, wait_for_downstream=True)
        EmptyOperator(task_id="c", depends_on_past=False)
    spec = dag.to_spec()
    got = {
        t.task_id: (t.depends_on_past, t.ignore_first_depends_on_past, t.wait_for_downstream)
        for t in spec.tasks
    }
    # As in Airflow, wait_for_downstream switches depends_on_past on.
    assert got == {"a": (True, True, False), "b": (True, False, True), "c": (False, False, False)}


def test_mail_arguments_mark_the_outcomes_that_mail_someone():
    """Sending is tested against a real SMTP server in tests/integration/test_task_mail.py."""
    with DAG("mail", schedule=None, start_date=DAY) as dag:
        EmptyOperator(task_id="both", email=["ops@example.com"])
        EmptyOperator(task_id="failure_only", email="ops@example.com", email_on_retry=False)
        EmptyOperator(task_id="none", email="ops@example.com", email_on_failure=False, email_on_retry=False)
        EmptyOperator(task_id="nobody")
    got = {t.task_id: [c for c in t.callbacks if c.startswith("mail:")] for t in dag.to_spec().tasks}
    assert got == {
        "both": ["mail:on_failure_callback", "mail:on_retry_callback"],
        "failure_only": ["mail:on_failure_callback"],
        "none": [],
        "nobody": [],
    }


def test_a_task_start_date_must_be_the_dags_and_default_args_give_the_dag_its_dates():
    with DAG("dates", schedule="@daily", default_args={"start_date": DAY, "owner": "data"}) as d:
        t = EmptyOperator(task_id="t")
    assert d.start_date == DAY and t.owner == "data"
    with pytest.raises(DagDefinitionError, match="start_date=.*differs from the DAG's"):
        with DAG("dates2", schedule=None, start_date=DAY):
            EmptyOperator(task_id="t", start_date=datetime(2020, 1, 1, tzinfo=UTC))


def test_weight_rules_sum_weights_as_airflow_does():
    down = {"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}
    up = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    w = {"a": 1, "b": 2, "c": 3, "d": 4}
    assert effective_weights(w, {}, down, up) == {"a": 10, "b": 6, "c": 7, "d": 4}
    rules = dict.fromkeys(w, "upstream")
    assert effective_weights(w, rules, down, up) == {"a": 1, "b": 3, "c": 4, "d": 10}
    assert effective_weights(w, dict.fromkeys(w, "absolute"), down, up) == w
    with DAG("weights", schedule=None, start_date=DAY) as d:
        EmptyOperator(task_id="a", priority_weight=5) >> EmptyOperator(task_id="b", weight_rule="absolute")
    assert {t.task_id: t.priority_weight for t in d.to_spec().tasks} == {"a": 6, "b": 1}
    with pytest.raises(ValueError, match="weight_rule"), DAG("bad_rule", schedule=None, start_date=DAY):
        EmptyOperator(task_id="a", weight_rule="sideways")


class Greet(BaseOperator):
    template_fields = ("greeting",)

    def __init__(self, *, greeting, punctuation="!", **kwargs):
        super().__init__(**kwargs)
        self.greeting = greeting
        self.punctuation = punctuation

    def execute(self, context):
        self.log.info("greeting %s", self.greeting)
        return f"{self.greeting}{self.punctuation}"


def test_a_custom_operator_gets_default_args_its_init_names_and_logs_through_self_log():
    calls = []
    with DAG(
        "greet",
        schedule=None,
        start_date=DAY,
        default_args={"punctuation": "?", "retries": 0},
        params={"who": "dag"},
    ) as d:
        Greet(
            task_id="g",
            greeting="hi {{ params.who }}",
            params={"who": "task"},
            task_display_name="Say hello",
            pre_execute=lambda ctx: calls.append(("pre", ctx["task"].greeting)),
            post_execute=lambda ctx, result: calls.append(("post", result)),
        )
    spec = d.to_spec()
    assert spec.task("g").display_name == "Say hello"
    run = d.test(logical_date=DAY)
    assert run.state is RunState.SUCCESS
    assert calls == [("pre", "hi task"), ("post", "hi task?")]
    log = run.ti("g").log
    assert "greeting hi task" in log and "returned: 'hi task?'" in log
    # A run's conf still overrides a task's params.
    assert d.test(run_conf={"who": "conf"}, logical_date=DAY).ti("g").state is TaskState.SUCCESS


def test_do_xcom_push_false_keeps_no_result():
    with DAG("no_push", schedule=None, start_date=DAY) as d:
        a = PythonOperator(task_id="a", python_callable=lambda: 42, do_xcom_push=False)

        @task
        def b(value):
            return f"got {value!r}"

        b(a.output)
    run = d.test(logical_date=DAY)
    # As in Airflow 3.3.2 (XComArg.resolve), a missing return value reads as None.
    assert run.ti("a").state is TaskState.SUCCESS and "returned: 42" in run.ti("a").log
    assert "returned: 'got None'" in run.ti("b").log


def test_an_operator_without_execute_fails_with_what_to_do():
    class Nothing(BaseOperator):
        pass

    with DAG("nothing", schedule=None, start_date=DAY) as d:
        Nothing(task_id="n")
    reason = d.test(logical_date=DAY).ti("n").reason
    assert "Nothing must define execute(self, context)" in reason


def test_partial_and_expand_refuse_what_cannot_be_mapped():
    with DAG("maps", schedule=None, start_date=DAY):
        with pytest.raises(DagDefinitionError, match="both partial"):
            Greet.partial(task_id="a", greeting="x").expand(greeting=["y"])
        with pytest.raises(DagDefinitionError, match="task setting"):
            Greet.partial(task_id="b", greeting="x").expand(retries=[1, 2])
        with pytest.raises(DagDefinitionError, match="not an argument of Greet"):
            Greet.partial(task_id="c").expand(greting=["x"])
        with pytest.raises(DagDefinitionError, match="needs task_id"):
            Greet.partial(greeting="x")


def test_expand_kwargs_on_an_operator_class():
    with DAG("expand_kwargs", schedule=None, start_date=DAY) as d:
        Greet.partial(task_id="g").expand_kwargs(
            [{"greeting": "a"}, {"greeting": "b {{ ds }}", "punctuation": "."}]
        )
    run = d.test(logical_date=DAY)
    assert run.state is RunState.SUCCESS
    assert "returned: 'b 2024-01-02.'" in run.ti("g", 1).log


def test_bash_operator_arguments(tmp_path):
    with DAG("bash_args", schedule=None, start_date=DAY, default_args={"owner": "ops"}) as d:
        BashOperator(task_id="cwd", bash_command="pwd; echo $AIRFLOW_CTX_DAG_OWNER", cwd=str(tmp_path))
        BashOperator(task_id="skip", bash_command="exit 3", skip_on_exit_code=[3])
        BashOperator(task_id="fail99", bash_command="exit 99", skip_on_exit_code=None)
        BashOperator(task_id="processed", bash_command="echo 1,2,3", output_processor=lambda s: s.split(","))
        BashOperator(task_id="latin1", bash_command="printf 'caf\\xe9\\n'", output_encoding="latin-1")
        BashOperator(task_id="nowhere", bash_command="true", cwd=str(tmp_path / "missing"))
    run = d.test(logical_date=DAY)
    assert f"{tmp_path}\nops" in run.ti("cwd").log
    assert run.ti("skip").state is TaskState.SKIPPED
    assert run.ti("fail99").state is TaskState.FAILED
    assert "returned: ['1', '2', '3']" in run.ti("processed").log
    assert "café" in run.ti("latin1").log
    assert "not an existing folder" in run.ti("nowhere").reason


def test_a_custom_sensor_with_soft_fail_is_skipped_on_timeout():
    class Never(BaseSensorOperator):
        def poke(self, context):
            return False

    with DAG("sensor", schedule=None, start_date=DAY) as d:
        Never(task_id="never", poke_interval=0.01, timeout=0.05, soft_fail=True)
    run = d.test(logical_date=DAY)
    assert run.ti("never").state is TaskState.SKIPPED


def test_task_params_are_merged_over_the_dags_and_checked_by_their_schemas():
    from millstream import Param

    seen = {}
    with DAG("tparams", schedule=None, start_date=DAY, params={"region": "eu", "n": 1}) as dag:

        @task(params={"n": Param(5, type="integer", minimum=1), "mode": "full"})
        def t(params=None):
            seen.update(params)

        t()
    assert dag.test().state is RunState.SUCCESS
    assert seen == {"region": "eu", "n": 5, "mode": "full"}
    run = dag.test(conf={"n": 0})  # the conf still wins, and is checked by the task's schema
    assert run.state is RunState.FAILED
    assert "task 't': param 'n': 0 is less than the minimum of 1" in run.ti("t").log


def test_the_graph_shows_each_operator_and_its_ui_color():
    from millstream.api.graph import dag_graph

    class Load(BaseOperator):
        ui_color = "#abcdef"

        def execute(self, context):
            return None

    class Odd(BaseOperator):
        ui_color = "red; background: url(x)"  # not a colour: left out of the page's styles

        def execute(self, context):
            return None

    with DAG("colours", schedule=None, start_date=DAY) as dag:

        @task
        def plain():
            return 1

        (
            plain()
            >> Load(task_id="load")
            >> BashOperator(task_id="b", bash_command="true")
            >> Odd(task_id="odd")
        )
    nodes = {n.id: (n.operator, n.color) for n in dag_graph(dag.to_spec()).nodes}
    assert nodes == {
        "plain": ("@task", "#ffefeb"),
        "load": ("Load", "#abcdef"),
        "b": ("BashOperator", "#f0ede4"),
        "odd": ("Odd", None),
    }


def test_task_bash_takes_bash_operator_arguments(tmp_path):
    from millstream import DAG, task

    with DAG("bash_args", schedule=None) as d:

        @task.bash(env={"WHO": "world"}, append_env=True, cwd=str(tmp_path), output_processor=str.upper)
        def greet():
            return 'echo "hello $WHO from $(pwd)"'

        @task.bash(skip_on_exit_code=3)
        def skip():
            return "exit 3"

        greet()
        skip()
    run = d.test()
    assert run.ti("greet").state.value == "success"
    assert f"returned: 'HELLO WORLD FROM {str(tmp_path).upper()}'" in run.ti("greet").log
    assert run.ti("skip").state.value == "skipped"


def test_task_bash_env_takes_another_tasks_output():
    from millstream import DAG, task

    with DAG("bash_env_xcom", schedule=None) as d:

        @task(multiple_outputs=True)
        def stats():
            return {"folder": "/data", "count": "3"}

        @task.bash
        def show():
            return 'echo "found $COUNT under $FOLDER"'

        s = stats()
        show.override(env={"FOLDER": s["folder"], "COUNT": s["count"]}, append_env=True)()
    run = d.test()
    assert run.ti("show").state.value == "success", run.ti("show").reason
    assert "returned: 'found 3 under /data'" in run.ti("show").log
