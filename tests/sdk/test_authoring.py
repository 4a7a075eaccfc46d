"""Authoring API: ids, wiring, groups, validation errors at definition time."""

from datetime import datetime, timedelta

import pytest

import millstream
from millstream import DAG, EmptyOperator, TaskGroup, chain, dag, task, task_group
from millstream.errors import CycleError, DagDefinitionError, DuplicateTaskIdError


def test_public_api_is_pinned():
    assert sorted(millstream.__all__) == sorted(
        [
            "DAG",
            "AirflowFailException",
            "AirflowSkipException",
            "Asset",
            "AssetAlias",
            "AssetAll",
            "AssetAny",
            "AssetOrTimeSchedule",
            "AssetTrigger",
            "AssetWatcher",
            "BaseOperator",
            "BaseSensorOperator",
            "BaseHook",
            "BaseNotifier",
            "DbApiHook",
            "HttpHook",
            "HttpOperator",
            "HttpSensor",
            "MySqlHook",
            "PostgresHook",
            "SQLCheckOperator",
            "SQLExecuteQueryOperator",
            "SQLValueCheckOperator",
            "SqlSensor",
            "SqliteHook",
            "Connection",
            "EmailOperator",
            "SlackWebhookHook",
            "SlackWebhookNotifier",
            "SmtpHook",
            "SmtpNotifier",
            "Variable",
            "WebhookNotifier",
            "send_email",
            "BashOperator",
            "CronDataIntervalTimetable",
            "CronTriggerTimetable",
            "DeadlineAlert",
            "DeadlineReference",
            "EmptyOperator",
            "FailTask",
            "FileArrivalWatcher",
            "Metadata",
            "MillstreamError",
            "ObjectStoragePath",
            "Param",
            "mask_secret",
            "PokeReturnValue",
            "PythonOperator",
            "SkipTask",
            "TaskGroup",
            "TriggerRule",
            "XComArg",
            "asset",
            "chain",
            "dag",
            "get_current_context",
            "load_dags",
            "setup",
            "task",
            "task_group",
            "teardown",
            # Airflow's standard provider, and what deferrable tasks are made of.
            "BaseBranchOperator",
            "BranchDateTimeOperator",
            "BranchDayOfWeekOperator",
            "BranchPythonOperator",
            "LatestOnlyOperator",
            "ShortCircuitOperator",
            "BashSensor",
            "DateTimeSensor",
            "DateTimeSensorAsync",
            "DayOfWeekSensor",
            "FileSensor",
            "PythonSensor",
            "TimeDeltaSensor",
            "TimeDeltaSensorAsync",
            "TimeSensor",
            "WaitSensor",
            "WeekDay",
            "ExternalTaskMarker",
            "ExternalTaskSensor",
            "TriggerDagRunOperator",
            "BranchExternalPythonOperator",
            "BranchPythonVirtualenvOperator",
            "ExternalPythonOperator",
            "PythonVirtualenvOperator",
            "BaseTrigger",
            "TriggerEvent",
            "TaskDeferred",
            "DateTimeTrigger",
            "FileTrigger",
            "TimeDeltaTrigger",
            "FileDeleteTrigger",
            "DirectoryFileDeleteTrigger",
            "DagStateTrigger",
            "WorkflowTrigger",
            "EdgeModifier",
            "Label",
            "chain_linear",
            "cross_downstream",
        ]
    )
    for name in millstream.__all__:
        assert hasattr(millstream, name)


def test_calling_the_same_task_function_gives_numbered_ids():
    @task
    def step():
        return 1

    with DAG("d") as d:
        step()
        step()
        step()
    assert d.task_ids == ["step", "step__1", "step__2"]


def test_override_changes_id_and_arguments():
    @task(retries=1)
    def step():
        return 1

    with DAG("d") as d:
        step.override(task_id="first", retries=3)()
    spec = d.to_spec().task("first")
    assert spec.retries == 3


def test_passing_outputs_creates_edges_and_operators_wire_both_ways():
    @task
    def a():
        return 1

    @task
    def b(x):
        return x

    with DAG("d") as d:
        x = a()
        y = b(x)
        z = EmptyOperator(task_id="z")
        y >> z
        w = EmptyOperator(task_id="w")
        w << z
    assert d.tasks["b"].upstream_task_ids == {"a"}
    assert d.tasks["z"].upstream_task_ids == {"b"}
    assert d.tasks["w"].upstream_task_ids == {"z"}


def test_lists_and_chain():
    with DAG("d") as d:
        a, b, c, e, f = (EmptyOperator(task_id=n) for n in "abcef")
        a >> [b, c]
        chain([b, c], [e, f])
    assert d.tasks["e"].upstream_task_ids == {"b"}
    assert d.tasks["f"].upstream_task_ids == {"c"}
    assert d.tasks["a"].downstream_task_ids == {"b", "c"}


def test_task_groups_prefix_ids_and_nest():
    @task
    def step():
        return 1

    @task_group
    def inner():
        step()

    with DAG("d") as d:
        with TaskGroup("outer"):
            step()
            inner()
            inner()
        with TaskGroup("flat", prefix_group_id=False):
            step()
    assert d.task_ids == ["outer.step", "outer.inner.step", "outer.inner__1.step", "step"]


def test_group_dependencies_connect_roots_and_leaves():
    with DAG("d") as d:
        start = EmptyOperator(task_id="start")
        with TaskGroup("g") as g:
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            a >> b
        end = EmptyOperator(task_id="end")
        start >> g >> end
    assert d.tasks["g.a"].upstream_task_ids == {"start"}
    assert d.tasks["end"].upstream_task_ids == {"g.b"}


def test_cycle_is_rejected_with_the_loop_and_a_line():
    with pytest.raises(CycleError) as e:
        with DAG("d"):
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            c = EmptyOperator(task_id="c")
            a >> b >> c >> a
    assert "a >> b >> c >> a" in str(e.value)
    assert e.value.filename == __file__ and e.value.lineno is not None


def test_duplicate_explicit_task_id_is_rejected():
    with pytest.raises(DuplicateTaskIdError, match="already has a task 'a'"):
        with DAG("d"):
            EmptyOperator(task_id="a")
            EmptyOperator(task_id="a")


def test_task_outside_dag_is_a_clear_error():
    @task
    def step():
        return 1

    with pytest.raises(DagDefinitionError, match="outside a DAG"):
        step()


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 25 * * *", "invalid hour field '25'"),
        ("* * *", "has 3 fields; expected 5"),
        ("@sometimes", "unknown schedule preset '@sometimes'"),
        (timedelta(0), "must be positive"),
        (42, "not understood"),
    ],
)
def test_bad_schedules_name_the_problem(schedule, message):
    with pytest.raises(DagDefinitionError, match=message):
        DAG("d", schedule=schedule)


def test_expand_validation():
    @task
    def f(x):
        return x

    with pytest.raises(
        DagDefinitionError, match="argument 'x' must be a list, a dict or the output of a task, got int"
    ):
        with DAG("d"):
            f.expand(x=3)
    with pytest.raises(DagDefinitionError, match="got argument 'y', which f\\(\\) does not take"):
        with DAG("d2"):
            f.expand(y=[1])
    with pytest.raises(DagDefinitionError, match="given to both partial\\(\\) and expand\\(\\)"):
        with DAG("d3"):
            f.partial(x=1).expand(x=[1])


def test_wrong_arguments_to_a_task_call_are_caught_at_definition():
    @task
    def f(x):
        return x

    with pytest.raises(DagDefinitionError, match="do not fit its signature"):
        with DAG("d"):
            f(1, 2)


def test_unknown_task_argument_lists_the_known_ones():
    with pytest.raises(TypeError, match="unknown task argument 'retires'"):

        @task(retires=3)
        def f():
            return 1


def test_unknown_trigger_rule_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown trigger_rule 'all_sucess'.*all_success"):

        @task(trigger_rule="all_sucess")
        def f():
            return 1


def test_dag_decorator_turns_parameters_into_params_and_registers():
    @dag(schedule="@hourly", start_date=datetime(2025, 1, 1), tags=["x"])
    def my_pipeline(n: int = 3):
        """My pipeline.

        Longer text."""

        @task
        def show(v):
            return v

        show(n)

    d = my_pipeline()
    spec = d.to_spec()
    assert spec.dag_id == "my_pipeline"
    assert spec.params == {"n": {"schema": {}, "default": 3}}
    assert spec.description == "My pipeline."
    assert spec.timetable == {"type": "cron", "expr": "@hourly", "tz": "UTC"}
    assert spec.start_date == "2025-01-01T00:00:00+00:00"


def test_default_args_apply_to_tasks_unless_overridden():
    @task
    def a():
        return 1

    @task(retries=5)
    def b():
        return 1

    with DAG("d", default_args={"retries": 2, "owner": "data-team"}) as d:
        a()
        b()
    spec = d.to_spec()
    assert spec.task("a").retries == 2
    assert spec.task("b").retries == 5
