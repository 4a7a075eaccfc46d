"""Run-level retries and deadlines, through dag.test()."""

from datetime import timedelta

import pytest

from millstream import DAG, DeadlineAlert, DeadlineReference, task
from millstream.core.states import RunState
from millstream.errors import DagDefinitionError


def test_a_failed_run_is_retried_reusing_what_succeeded():
    calls = {"extract": 0, "load": 0}

    @task
    def extract():
        calls["extract"] += 1
        return [1, 2]

    @task
    def load(rows):
        calls["load"] += 1
        if calls["load"] == 1:
            raise RuntimeError("warehouse unavailable")
        return len(rows)

    with DAG("d", retries=1) as d:
        load(extract())
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert calls == {"extract": 1, "load": 2}


def test_retry_strategy_all_reruns_everything_and_retries_are_bounded():
    calls = {"a": 0, "b": 0}

    @task
    def a():
        calls["a"] += 1

    @task
    def b():
        calls["b"] += 1
        raise RuntimeError("always")

    with DAG("d", retries=2, retry_strategy="all") as d:
        a() >> b()
    run = d.test()
    assert run.state is RunState.FAILED
    assert calls == {"a": 3, "b": 3}


def test_bad_retry_strategy_is_rejected():
    with pytest.raises(DagDefinitionError, match="retry_strategy must be 'failed_only' or 'all'"):
        DAG("d", retry_strategy="sometimes")


def test_deadlines_call_back_once_and_the_run_keeps_going():
    missed = []

    @task(
        deadline=DeadlineAlert(
            interval=timedelta(0),
            reference=DeadlineReference.RUN_START,
            callback=lambda ctx: missed.append(("task", ctx["task_id"])),
        )
    )
    def slow():
        return 1  # with an interval of 0 the deadline has passed before it even starts

    alert = DeadlineAlert(
        interval=timedelta(0),
        reference=DeadlineReference.RUN_START,
        callback=lambda ctx: missed.append(("run", ctx["reason"])),
    )
    with DAG("d", deadline=alert) as d:
        slow()
    run = d.test()
    assert run.state is RunState.SUCCESS
    assert sorted(missed) == [("run", "deadline missed: the run not finished in time"), ("task", "slow")]
