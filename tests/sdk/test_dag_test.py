"""TaskFlow semantics through dag.test(): the real scheduler, store and worker, in-process."""

from datetime import datetime

import pytest

from millstream import (
    DAG,
    BashOperator,
    Param,
    SkipTask,
    TriggerRule,
    dag,
    get_current_context,
    task,
    task_group,
)
from millstream.core.states import RunState, TaskState
from millstream.errors import ParamValidationError, TaskFlowError

S = TaskState


def seed_dag(n: int = 3):
    @dag(schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False)
    def process_daily_files():
        @task
        def list_files():
            return [f"file_{i:03d}.csv" for i in range(1, n + 1)]

        @task
        def process_file(filename: str):
            print(f"Processing {filename}")
            return f"Processed: {filename}"

        @task
        def summarize(results: list[str]):
            print(f"Completed {len(results)} files")
            return list(results)

        summarize(process_file.expand(filename=list_files()))

    return process_daily_files()


def test_reference_dag_runs_and_fans_in_in_map_index_order():
    run = seed_dag().test()
    assert run.state is RunState.SUCCESS
    assert run.states() == {
        "list_files": S.SUCCESS,
        "process_file[0]": S.SUCCESS,
        "process_file[1]": S.SUCCESS,
        "process_file[2]": S.SUCCESS,
        "summarize": S.SUCCESS,
    }
    assert "Completed 3 files" in run.ti("summarize").log
    assert "Processing file_002.csv" in run.ti("process_file", 1).log
    assert all(ti.try_number == 1 for ti in run.task_instances)


def test_a_failing_task_does_not_raise_and_its_traceback_is_in_the_log():
    @task
    def boom():
        raise ValueError("bad input row 17")

    @task
    def after():
        return 1

    with DAG("d") as d:
        boom() >> after()
    run = d.test()
    assert run.state is RunState.FAILED
    assert run.ti("boom").state is S.FAILED
    assert run.ti("after").state is S.UPSTREAM_FAILED
    log = run.ti("boom").log
    assert "Traceback" in log and "ValueError: bad input row 17" in log
    # failures(): the failed instance with its reason and traceback; not its victims.
    (f,) = run.failures()
    assert (f.task_id, f.map_index, f.try_number) == ("boom", -1, 1)
    assert f.reason == "attempt 1 failed: ValueError: bad input row 17"
    assert f.traceback is not None and 'raise ValueError("bad input row 17")' in f.traceback
    assert f.traceback.rstrip().endswith("ValueError: bad input row 17")
    assert run.state_reason == "failed: boom (attempt 1 failed: ValueError: bad input row 17)"


def test_a_value_expand_cannot_map_is_a_failure_with_its_reason_and_no_traceback():
    @task
    def nums():
        return 3

    @task
    def use(n):
        return n

    with DAG("d") as d:
        use.expand(n=nums())
    (f,) = d.test().failures()
    assert f.task_id == "use" and f.traceback is None and f.try_number == 0
    assert "returned int, expected a list or dict" in f.reason


def test_mark_success_pattern_marks_matching_tasks_without_running_them():
    ran = []

    @task
    def sensor_upstream():
        ran.append("sensor")

    @task
    def work():
        ran.append("work")

    with DAG("d") as d:
        sensor_upstream() >> work()
    run = d.test(mark_success_pattern="sensor_.*")
    assert run.state is RunState.SUCCESS and ran == ["work"]
    assert "marked success without running" in run.ti("sensor_upstream").log


def test_retries_run_again_and_each_attempt_has_its_own_log():
    calls = []

    @task(retries=2, retry_delay=0)
    def flaky():
        calls.append(1)
        print(f"attempt {len(calls)}")
        if len(calls) < 3:
            raise RuntimeError("transient")
        return "ok"

    with DAG("d") as d:
        flaky()
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert run.ti("flaky").try_number == 3
    assert "attempt 1" in run.ti("flaky").log and "attempt 3" in run.ti("flaky").log


def test_context_via_kwargs_named_params_and_get_current_context():
    seen = {}

    @task
    def by_kwargs(**context):
        seen["kw"] = (context["run_id"], context["ti"].task_id, context["params"]["n"])

    @task
    def by_name(ds, ti, params):
        seen["named"] = (ds, ti.try_number, params["n"])

    @task
    def by_function():
        ctx = get_current_context()
        seen["fn"] = (ctx["logical_date"], ctx["dag_run"].run_type, ctx["data_interval_start"] is not None)

    with DAG("d", params={"n": 3}) as d:
        by_kwargs()
        by_name()
        by_function()
    run = d.test(run_conf={"n": 5}, logical_date=datetime(2025, 3, 4))
    assert run.state is RunState.SUCCESS
    assert seen["kw"][1:] == ("by_kwargs", 5)
    assert seen["named"] == ("2025-03-04", 1, 5)
    assert seen["fn"][1] == "manual"


def test_params_are_validated_at_trigger_time():
    with DAG("d", params={"n": Param(3, type="integer", minimum=1)}) as d:
        pass
    with pytest.raises(ParamValidationError, match="param 'n'"):
        d.test(run_conf={"n": "three"})


def test_dag_function_parameters_resolve_at_run_time():
    got = []

    @dag
    def pipeline(limit: int = 10):
        @task
        def use(v):
            got.append(v)

        use(limit)

    pipeline().test(run_conf={"limit": 42})
    assert got == [42]


def test_get_current_context_outside_a_task_is_a_clear_error():
    with pytest.raises(TaskFlowError, match="outside a running task"):
        get_current_context()


def test_branch_follows_the_chosen_task_and_the_join_runs():
    @task.branch
    def choose():
        return "left"

    @task
    def left():
        return "L"

    @task
    def right():
        return "R"

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def join():
        return "J"

    @task
    def strict_join():
        return "S"

    with DAG("d") as d:
        c = choose()
        lt, rt = left(), right()
        c >> [lt, rt]
        [lt, rt] >> join()
        [lt, rt] >> strict_join()
    run = d.test()
    assert run.states() == {
        "choose": S.SUCCESS,
        "left": S.SUCCESS,
        "right": S.SKIPPED,
        "join": S.SUCCESS,
        "strict_join": S.SKIPPED,
    }
    assert run.state is RunState.SUCCESS


def test_branch_returning_an_unknown_task_fails_with_the_choices():
    @task.branch
    def choose():
        return "nowhere"

    @task
    def left():
        return 1

    with DAG("d") as d:
        choose() >> left()
    run = d.test()
    assert run.ti("choose").state is S.FAILED
    assert "neither tasks nor task groups of DAG 'd'; choose from its direct downstream tasks ['left']" in (
        run.ti("choose").log
    )


def test_short_circuit_skips_everything_downstream():
    @task.short_circuit
    def check():
        return False

    @task
    def b():
        return 1

    @task(trigger_rule="all_done")
    def c():
        return 1

    with DAG("d") as d:
        check() >> b() >> c()
    run = d.test()
    assert run.states() == {"check": S.SUCCESS, "b": S.SKIPPED, "c": S.SKIPPED}


def test_skip_exception_and_bash():
    @task
    def skipper():
        raise SkipTask("nothing to do today")

    @task.bash
    def shout():
        return "echo hello; echo world"

    with DAG("d") as d:
        skipper()
        shout()
        BashOperator(task_id="fails", bash_command="exit 3")
    run = d.test()
    assert run.ti("skipper").state is S.SKIPPED
    assert run.ti("shout").state is S.SUCCESS and "hello" in run.ti("shout").log
    assert run.ti("fails").state is S.FAILED and "exited with code 3" in run.ti("fails").log


def test_empty_map_skips_and_all_done_downstream_runs():
    @task
    def nothing():
        return []

    @task
    def each(x):
        return x

    @task
    def strict(xs):
        return list(xs)

    @task(trigger_rule="all_done")
    def report(xs):
        return len(xs)

    with DAG("d") as d:
        out = each.expand(x=nothing())
        strict(out)
        report(out)
    run = d.test()
    assert run.states() == {"nothing": S.SUCCESS, "each": S.SKIPPED, "strict": S.SKIPPED, "report": S.SUCCESS}


@pytest.mark.parametrize(("value", "type_name"), [(None, "NoneType"), (7, "int"), ("abc", "str")])
def test_unmappable_values_fail_the_mapped_task_with_a_clear_message(value, type_name):
    @task
    def produce():
        return value

    @task
    def each(x):
        return x

    with DAG("d") as d:
        each.expand(x=produce())
    run = d.test()
    assert run.ti("each").state is S.FAILED
    assert run.ti("each").reason == (
        f"cannot expand task 'each' of DAG 'd' over argument 'x': upstream 'produce' returned {type_name}, "
        "expected a list or dict"
    )
    assert run.state is RunState.FAILED


def test_fan_in_after_a_failed_instance_has_a_gap_not_a_none():
    got = {}

    @task
    def items():
        return [1, 2, 3, 4]

    @task
    def inv(x):
        if x == 2:
            raise ValueError("two")
        return 10 * x

    @task(trigger_rule="all_done")
    def collect(values):
        got["len"] = len(values)
        got["list"] = list(values)
        got["first"] = values[0]
        got["last"] = values[-1]

    with DAG("d") as d:
        collect(inv.expand(x=items()))
    run = d.test()
    assert run.ti("collect").state is S.SUCCESS
    assert got == {"len": 3, "list": [10, 30, 40], "first": 10, "last": 40}


def test_partial_literal_lists_dicts_and_cartesian_products():
    got = []

    @task
    def combine(a, b, c):
        got.append((a, b, c))
        return f"{a}{b}{c}"

    @task
    def pairs(kv):
        return kv

    with DAG("d") as d:
        combine.partial(c="!").expand(a=[1, 2], b=["x", "y"])
        pairs.expand(kv={"k1": 1, "k2": 2})
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert got == [(1, "x", "!"), (1, "y", "!"), (2, "x", "!"), (2, "y", "!")]


def test_multiple_outputs_and_mapping_over_a_key():
    seen = []

    @task(multiple_outputs=True)
    def split():
        return {"names": ["a", "b"], "count": 2}

    @task
    def each(name):
        seen.append(name)

    @task
    def show(count):
        seen.append(count)

    with DAG("d") as d:
        out = split()
        each.expand(name=out["names"])
        show(out["count"])
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert sorted(map(str, seen)) == ["2", "a", "b"]


def test_map_index_template_labels_instances():
    @task(map_index_template="{{ filename }}")
    def process(filename):
        return filename

    with DAG("d") as d:
        process.expand(filename=["a.csv", "b.csv"])
    run = d.test()
    assert [ti.label for ti in run.task_instances] == ["a.csv", "b.csv"]


def test_non_json_result_fails_with_advice():
    @task
    def returns_object():
        return object()

    with DAG("d") as d:
        returns_object()
    run = d.test()
    assert run.ti("returns_object").state is S.FAILED
    assert "cannot be stored as a result" in run.ti("returns_object").log


def test_task_groups_run_with_prefixed_ids():
    @task
    def one():
        return 1

    @task
    def add(x):
        return x + 1

    @task_group
    def grp():
        return add(one())

    @task
    def final(v):
        assert v == 2

    with DAG("d") as d:
        final(grp())
    run = d.test()
    assert run.states() == {"grp.one": S.SUCCESS, "grp.add": S.SUCCESS, "final": S.SUCCESS}


def test_xcom_pull_from_context():
    @task
    def produce():
        return {"a": 1}

    @task
    def consume(ti=None):
        return ti.xcom_pull(task_ids="produce")["a"]

    with DAG("d") as d:
        produce() >> consume()
    assert d.test().state is RunState.SUCCESS


def test_dag_test_runs_only_the_triggered_run_even_for_a_scheduled_dag():
    calls = []

    @dag(schedule="@hourly", start_date=datetime(2025, 1, 1), catchup=True)
    def hourly():
        @task
        def t():
            calls.append(1)

        t()

    run = hourly().test()
    assert run.state is RunState.SUCCESS and len(calls) == 1
