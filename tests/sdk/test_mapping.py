"""Dynamic task mapping: every form, its errors, and how it combines with the rest."""

import pytest

from millstream import DAG, dag, get_current_context, task, task_group
from millstream.core.states import RunState, TaskState
from millstream.errors import DagDefinitionError

S = TaskState


def test_chained_mapping_is_index_for_index():
    @task
    def numbers():
        return [1, 2, 3]

    @task
    def double(x):
        return 2 * x

    @task
    def plus_one(x):
        return x + 1

    @task
    def total(xs):
        return sum(xs)

    got = {}

    @task
    def check(xs):
        got["xs"] = list(xs)

    with DAG("d") as d:
        out = plus_one.expand(x=double.expand(x=numbers()))
        check(out)
        total(out)
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert got["xs"] == [3, 5, 7]
    assert d.to_spec().task("plus_one").aligned == ("double",)


def test_chained_mapping_failure_only_affects_its_own_index():
    @task
    def items():
        return [1, 2, 3]

    @task
    def first(x):
        if x == 2:
            raise ValueError("bad item")
        return x

    @task
    def second(x):
        return x * 10

    @task(trigger_rule="all_done")
    def collect(values):
        return list(values)

    with DAG("d") as d:
        collect(second.expand(x=first.expand(x=items())))
    run = d.test()
    assert run.states() == {
        "items": S.SUCCESS,
        "first[0]": S.SUCCESS,
        "first[1]": S.FAILED,
        "first[2]": S.SUCCESS,
        "second[0]": S.SUCCESS,
        "second[1]": S.UPSTREAM_FAILED,
        "second[2]": S.SUCCESS,
        "collect": S.SUCCESS,
    }


def test_expand_kwargs_from_a_literal_and_from_an_upstream():
    got = []

    @task
    def pair(a, b):
        got.append((a, b))

    @task
    def make():
        return [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]

    with DAG("d") as d:
        pair.expand_kwargs([{"a": 0, "b": "lit"}])
        pair.expand_kwargs(make())
    assert d.test().state is RunState.SUCCESS
    assert sorted(got) == [(0, "lit"), (1, "x"), (2, "y")]


def test_expand_kwargs_element_that_is_not_a_dict_fails_clearly():
    @task
    def f(a):
        return a

    @task
    def make():
        return [{"a": 1}, 5]

    with DAG("d") as d:
        f.expand_kwargs(make())
    run = d.test()
    assert run.ti("f", 0).state is S.SUCCESS
    assert run.ti("f", 1).state is S.FAILED
    assert "element 1 is a int, expected a dict of arguments" in run.ti("f", 1).log


def test_map_zip_and_concat():
    got = []

    @task
    def names():
        return ["a", "b", "c"]

    @task
    def numbers():
        return [1, 2]

    @task
    def show(v):
        got.append(v)

    with DAG("d") as d:
        n, m = names(), numbers()
        show.override(task_id="upper").expand(v=n.map(str.upper))
        show.override(task_id="zipped").expand(v=n.zip(m))
        show.override(task_id="zip_longest").expand(v=n.zip(m, fillvalue=0))
        show.override(task_id="concat").expand(v=n.concat(m, ["z"]))
    run = d.test()
    assert run.state is RunState.SUCCESS
    counts = {
        tid: sum(1 for t in run.task_instances if t.task_id == tid)
        for tid in ("upper", "zipped", "zip_longest", "concat")
    }
    assert counts == {"upper": 3, "zipped": 2, "zip_longest": 3, "concat": 6}
    assert sorted(map(str, got)) == sorted(
        map(str, ["A", "B", "C", ("a", 1), ("b", 2), ("a", 1), ("b", 2), ("c", 0), "a", "b", "c", 1, 2, "z"])
    )


def test_map_over_a_mapped_output_with_a_transform():
    @task
    def items():
        return [1, 2]

    @task
    def square(x):
        return x * x

    seen = []

    @task
    def show(v):
        seen.append(v)

    with DAG("d") as d:
        show.expand(v=square.expand(x=items()).map(lambda v: f"<{v}>"))
    assert d.test().state is RunState.SUCCESS
    assert sorted(seen) == ["<1>", "<4>"]


def test_mapped_task_group_shares_the_index_and_fans_in():
    @task
    def files():
        return ["a.csv", "b.csv", "c.csv"]

    @task
    def extract(name):
        return f"rows of {name}"

    @task
    def load(rows, name):
        return f"{name}: {rows}"

    @task_group
    def per_file(name):
        return load(extract(name), name)

    got = {}

    @task
    def report(results):
        got["r"] = list(results)

    with DAG("d") as d:
        report(per_file.expand(name=files()))
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert got["r"] == [f"{n}: rows of {n}" for n in ("a.csv", "b.csv", "c.csv")]
    assert d.to_spec().task("per_file.load").aligned == ("per_file.extract",)
    assert [t.map_index for t in run.task_instances if t.task_id == "per_file.load"] == [0, 1, 2]


def test_mapped_group_instance_failure_stays_in_its_lane():
    @task_group
    def lane(x):
        @task
        def check(v):
            if v == 2:
                raise ValueError("two")
            return v

        @task
        def after(v):
            return v

        after(check(x))

    with DAG("d") as d:
        lane.expand(x=[1, 2, 3])
    run = d.test()
    assert [run.ti("lane.after", i).state for i in range(3)] == [S.SUCCESS, S.UPSTREAM_FAILED, S.SUCCESS]


def test_partial_on_a_mapped_group():
    got = []

    @task_group
    def g(x, suffix):
        @task
        def show(v, s):
            got.append(f"{v}{s}")

        show(x, suffix)

    with DAG("d") as d:
        g.partial(suffix="!").expand(x=["a", "b"])
    assert d.test().state is RunState.SUCCESS
    assert sorted(got) == ["a!", "b!"]


def test_expanding_inside_a_mapped_group_is_rejected():
    @task
    def f(v):
        return v

    @task_group
    def g(x):
        f.expand(v=[1, 2])

    with pytest.raises(DagDefinitionError, match="expanded inside the expanded task group 'g'"):
        with DAG("d"):
            g.expand(x=[1])


def test_label_from_the_template_and_from_the_context():
    @task(map_index_template="{{ filename }}")
    def by_arg(filename):
        return filename

    @task(map_index_template="{{ my_label }}")
    def by_context(n):
        get_current_context()["my_label"] = f"item #{n}"

    with DAG("d") as d:
        by_arg.expand(filename=["a.csv", "b.csv"])
        by_context.expand(n=[7])
    run = d.test()
    assert [t.label for t in run.task_instances if t.task_id == "by_arg"] == ["a.csv", "b.csv"]
    assert run.ti("by_context", 0).label == "item #7"
    assert "(a.csv)" in run.ti("by_arg", 0).log


def test_retries_are_per_index():
    attempts = {}

    @task(retries=1, retry_delay=0)
    def flaky(x):
        attempts[x] = attempts.get(x, 0) + 1
        if x == 1 and attempts[x] == 1:
            raise RuntimeError("first try of 1 fails")
        return x

    with DAG("d") as d:
        flaky.expand(x=[0, 1, 2])
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert [run.ti("flaky", i).try_number for i in range(3)] == [1, 2, 1]


def test_mapping_with_trigger_rules_after_an_upstream_failure():
    @task
    def items():
        raise RuntimeError("listing failed")

    @task(trigger_rule="all_done")
    def each(x):
        return x

    @task(trigger_rule="all_done")
    def after(xs):
        return len(xs)

    with DAG("d") as d:
        after(each.expand(x=items()))
    run = d.test()
    # Nothing to map over: the mapped task cannot expand; all_done downstream still runs.
    assert run.ti("each").state is S.UPSTREAM_FAILED
    assert "did not succeed" in run.ti("each").reason
    assert run.ti("after").state is S.SUCCESS


@dag
def _wide(n: int = 10):
    @task
    def make(n):
        return list(range(n))

    @task
    def ident(x):
        return x

    @task
    def total(xs):
        return sum(xs)

    total(ident.expand(x=make(n)))


def test_the_map_length_limit_is_a_setting():
    from millstream.testing import run_dag_inline

    run = run_dag_inline(_wide(), conf={"n": 11}, max_map_length=10)
    assert run.ti("ident").state is S.FAILED
    assert "over the limit of 10" in run.ti("ident").reason
