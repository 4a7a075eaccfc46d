"""The depends_on_past rule read from the store, branch by branch, as Airflow 3.3's
PrevDagrunDep decides it (the scheduler test shows it holding real runs in order)."""

from datetime import UTC, datetime

import pytest

from millstream.core.model import DagSpec, TaskSpec
from millstream.core.states import TaskState
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.store.past import waiting_on_past

SPEC = DagSpec("d", (TaskSpec("work"), TaskSpec("after", upstream=("work",))), fileloc="/dags/d.py")
OLD = DagSpec("d", (TaskSpec("after"),), fileloc="/dags/d.py")  # before "work" existed


def D(day):
    return datetime(2025, 1, day, tzinfo=UTC)


def run(store, day, *, run_type="scheduled", spec=SPEC, states=None):
    with store.begin() as conn:
        version = dags_q.sync_parsed(conn, [spec], now=D(day), paused_on_create=False)["d"]
        pk = runs_q.create_run(
            conn,
            dag_id="d",
            run_id=f"{run_type}__{day}",
            version_id=version,
            run_type=run_type,
            logical_date=D(day),
            interval=(D(day), D(day)),
            run_after=D(day),
            conf={},
            now=D(day),
        )
        ti_q.create_for_run(conn, pk, spec)
        for task_id, state in (states or {}).items():
            ti_q.set_states(conn, pk, task_id, [-1], TaskState(state), "test")
    return pk


def wait(store, pk, day, *, catchup=False, downstream=None, ignore_first=False, start=None):
    with store.read() as conn:
        return waiting_on_past(
            conn,
            run_pk=pk,
            dag_id="d",
            logical_date=D(day),
            task_id="work",
            catchup=catchup,
            start_date=start,
            ignore_first=ignore_first,
            downstream=downstream,
        )


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_the_rule_branch_by_branch(store):
    first = run(store, 1, states={"work": "success", "after": "failed"})
    assert wait(store, first, 1) is None  # no previous run
    second = run(store, 2)
    assert wait(store, second, 2) is None  # the previous instance succeeded
    assert "wait_for_downstream" in wait(store, second, 2, downstream=("after",))
    third = run(store, 3, run_type="manual")
    # Without catchup the previous run is any run; day 2's "work" is still none.
    assert "'work' in the previous run 'scheduled__2' is none" in wait(store, third, 3)
    with store.begin() as conn:
        ti_q.set_states(conn, second, "work", [-1], TaskState.SKIPPED, "test")
    assert wait(store, third, 3) is None  # skipped counts as done
    fourth = run(store, 4)
    with store.begin() as conn:
        ti_q.set_states(conn, third, "work", [-1], TaskState.FAILED, "test")
    assert "is failed" in wait(store, fourth, 4)
    # With catchup the previous run is the previous non-manual one: day 2, skipped.
    assert wait(store, fourth, 4, catchup=True) is None
    # A previous run from before the DAG's start date does not count.
    assert wait(store, fourth, 4, catchup=True, start=D(4)) is None


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_task_new_in_the_dag_and_the_first_run_of_a_backfill(store):
    run(store, 1, spec=OLD, states={"after": "success"})
    later = run(store, 2)
    assert "has no instance of 'work' yet" in wait(store, later, 2)
    assert wait(store, later, 2, ignore_first=True) is None  # no earlier instance anywhere
    third = run(store, 3)
    # ignore_first only helps the very first instance: day 2 has one.
    assert "is none" in wait(store, third, 3, ignore_first=True)
    with store.begin() as conn:
        runs_q.assign_backfill(conn, third, 7, 0)
    assert wait(store, third, 3) is None  # first of its backfill
    fourth = run(store, 4)
    with store.begin() as conn:
        runs_q.assign_backfill(conn, fourth, 7, 1)
    assert "is none" in wait(store, fourth, 4)
