"""Setup and teardown: definition rules and semantics through dag.test()."""

import pytest

from millstream import DAG, SkipTask, dag, setup, task, task_group, teardown
from millstream.core.states import RunState, TaskState
from millstream.errors import CycleError, DagDefinitionError

S = TaskState


@setup
def create():
    return "cluster-1"


@teardown
def delete(cluster_id=None):
    print(f"deleting {cluster_id}")


@task
def work(cluster_id=None):
    return f"used {cluster_id}"


@task
def fail(cluster_id=None):
    raise RuntimeError("work failed")


def test_with_block_puts_the_work_between_setup_and_teardown():
    with DAG("d") as d:
        c = create()
        with c >> delete(c):
            a = work(c)
            b = work.override(task_id="second")(a)
    up = {t: sorted(o.upstream_task_ids) for t, o in d.tasks.items()}
    assert up == {"create": [], "delete": ["create", "second"], "work": ["create"], "second": ["work"]}
    spec = d.to_spec()
    assert spec.task("create").is_setup and spec.task("delete").is_teardown
    assert spec.task("delete").trigger_rule == "all_done_setup_success"
    del b


def test_setup_result_reaches_work_and_teardown_and_everything_succeeds():
    with DAG("d") as d:
        c = create()
        with c >> delete(c):
            work(c)
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert "deleting cluster-1" in run.ti("delete").log
    assert run.ti("create").is_setup and run.ti("delete").is_teardown


def test_teardown_runs_after_failed_work_and_the_run_fails_because_of_the_work():
    with DAG("d") as d:
        c = create()
        with c >> delete(c):
            fail(c)
    run = d.test()
    assert run.states() == {"create": S.SUCCESS, "fail": S.FAILED, "delete": S.SUCCESS}
    assert run.state is RunState.FAILED


def test_failed_setup_fails_the_work_and_the_teardown_does_not_run():
    @setup
    def broken():
        raise RuntimeError("no capacity")

    with DAG("d") as d:
        s = broken()
        with s >> delete():
            work()
    run = d.test()
    assert run.states() == {"broken": S.FAILED, "work": S.UPSTREAM_FAILED, "delete": S.UPSTREAM_FAILED}
    assert run.state is RunState.FAILED


def test_failed_teardown_leaves_a_successful_run_successful_unless_asked():
    @teardown
    def bad_cleanup():
        raise RuntimeError("cleanup failed")

    @teardown(on_failure_fail_dagrun=True)
    def strict_cleanup():
        raise RuntimeError("cleanup failed")

    with DAG("lenient") as lenient:
        with create() >> bad_cleanup():
            work()
    assert lenient.test().state is RunState.SUCCESS
    with DAG("strict") as strict:
        with create() >> strict_cleanup():
            work()
    assert strict.test().state is RunState.FAILED


def test_skipped_setup_skips_work_and_teardown():
    @setup
    def maybe():
        raise SkipTask("nothing to set up today")

    with DAG("d") as d:
        with maybe() >> delete():
            work()
    run = d.test()
    assert run.states() == {"maybe": S.SKIPPED, "work": S.SKIPPED, "delete": S.SKIPPED}
    assert run.state is RunState.SUCCESS


def test_teardown_runs_if_one_of_several_setups_succeeded():
    @setup
    def s1():
        raise RuntimeError("s1 failed")

    @setup
    def s2():
        return 2

    with DAG("d") as d:
        a, b = s1(), s2()
        w = work()
        [a, b] >> w
        w >> delete().as_teardown(setups=[a, b])
    run = d.test()
    assert run.states() == {"s1": S.FAILED, "s2": S.SUCCESS, "work": S.UPSTREAM_FAILED, "delete": S.SUCCESS}


def test_mapped_work_between_setup_and_teardown():
    @task
    def each(x):
        if x == 2:
            raise ValueError("two")
        return x

    with DAG("d") as d:
        with create() >> delete():
            each.expand(x=[1, 2, 3])
    run = d.test()
    assert [run.ti("each", i).state for i in range(3)] == [S.SUCCESS, S.FAILED, S.SUCCESS]
    assert run.ti("delete").state is S.SUCCESS
    assert run.state is RunState.FAILED


def test_dependencies_on_a_group_ignore_its_teardowns():
    @task_group
    def grp():
        with create() >> delete():
            work()

    @task
    def after():
        return 1

    with DAG("d") as d:
        g = grp()
        g >> after()
    assert d.tasks["after"].upstream_task_ids == {"grp.work"}
    run = d.test()
    assert run.state is RunState.SUCCESS


def test_nested_scopes():
    @setup
    def inner_create():
        return "tmp"

    @teardown
    def inner_delete():
        return None

    with DAG("d") as d:
        with create() >> delete():
            with inner_create() >> inner_delete():
                fail()
    up = {t: sorted(o.upstream_task_ids) for t, o in d.tasks.items()}
    assert up["inner_create"] == ["create"]
    assert up["delete"] == ["create", "inner_delete"]
    run = d.test()
    assert run.states() == {
        "create": S.SUCCESS,
        "inner_create": S.SUCCESS,
        "fail": S.FAILED,
        "inner_delete": S.SUCCESS,
        "delete": S.SUCCESS,
    }
    assert run.state is RunState.FAILED


def test_as_setup_and_as_teardown_on_plain_tasks():
    @task
    def make():
        return "r"

    @task
    def drop(r):
        return None

    with DAG("d") as d:
        m = make().as_setup()
        w = work(m)
        w >> drop(m).as_teardown(setups=m)
    spec = d.to_spec()
    assert spec.task("make").is_setup and spec.task("drop").is_teardown
    assert d.test().state is RunState.SUCCESS


def test_a_teardown_without_setup_is_rejected():
    with pytest.raises(DagDefinitionError, match="teardown 'delete' has no setup"):
        with DAG("d"):
            work() >> delete()


def test_a_task_cannot_be_its_own_teardown():
    with pytest.raises(DagDefinitionError, match="cannot be the teardown of itself"):
        with DAG("d"):
            w = work()
            w.as_teardown(setups=w)


def test_a_setup_cannot_also_be_a_teardown():
    with pytest.raises(DagDefinitionError, match="already a setup"):
        with DAG("d"):
            c = create()
            c.as_teardown(setups=work())


def test_cycles_made_by_as_teardown_are_rejected():
    with pytest.raises(CycleError, match="cycle"):
        with DAG("d"):
            c = create()
            t = delete()
            c >> t
            t.as_teardown(setups=[c])
            t >> c


def test_work_right_after_a_setup_must_use_all_success():
    with pytest.raises(
        DagDefinitionError, match="directly follows setup 'create' and must use trigger_rule all_success"
    ):
        with DAG("d"):
            create() >> work.override(trigger_rule="all_done")()


def test_decorated_dag_with_setup_and_teardown():
    @dag
    def pipeline():
        c = create()
        with c >> delete(c):
            work(c)

    assert pipeline().test().state is RunState.SUCCESS


def test_a_mapped_setup_keeps_its_role():
    @setup
    def make(n):
        return n

    with DAG("d") as d:
        s = make.expand(n=[1, 2])
        with s >> delete():
            work()
    assert d.to_spec().task("make").is_setup
    assert d.test().state is RunState.SUCCESS
