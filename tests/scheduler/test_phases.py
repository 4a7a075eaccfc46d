"""Each phase of a scheduler turn on its own, on real parts: the in-memory store, the
inline executor and a fake clock. The integration tests drive whole turns; these pin
down which module decides what, so a newcomer can change one phase and test it alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from millstream import DAG, control, task
from millstream.core.states import TaskState
from millstream.executors.inline import InlineExecutor
from millstream.scheduler import apply, creation, dispatch, lifecycle, liveness, timers
from millstream.scheduler.loop import Scheduler
from millstream.scheduler.parsing import Parsed
from millstream.scheduler.ready import ReadyQueue
from millstream.store import Store
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.worker.callbacks import InlineCallbackRunner
from millstream.worker.results import ResultReader

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def build(tmp_path: Path, dag: DAG, clock: FakeClock) -> Scheduler:
    store = Store.memory()
    executor = InlineExecutor(lambda fileloc, dag_id: dag, ResultReader(store))
    sched = Scheduler(
        store,
        executor,
        logs_folder=str(tmp_path / "logs"),
        clock=clock,
        paused_on_creation=False,
        callbacks=InlineCallbackRunner(lambda fileloc, dag_id: dag),
    )
    spec = dag.to_spec()
    sched.record_parsed([Parsed(spec.fileloc, [spec])])
    return sched


def two_step_dag(**dag_kwargs: object) -> DAG:
    with DAG("two_step", **dag_kwargs) as d:  # type: ignore[arg-type]

        @task
        def first() -> int:
            return 1

        @task(priority_weight=5)
        def second(x: int) -> int:
            return x + 1

        second(first())
    return d


# -- ready queue ----------------------------------------------------------------------------


def test_ready_queue_publishes_only_after_commit_and_ranks_by_priority():
    q = ReadyQueue()
    q.stage(1, "low", 0)
    q.stage(1, "high", 0)
    assert not q  # staged: the transaction has not committed yet
    q.publish(lambda run_pk, task_id: 10 if task_id == "high" else 1)
    assert q.keys_in_order() == [(1, "high"), (1, "low")]
    q.stage(1, "low", 1)
    q.publish(lambda run_pk, task_id: 1)
    assert list(q.queue((1, "low"))) == [0, 1]
    q.done((1, "high"))
    assert q.keys_in_order() == [(1, "low")]
    q.clear()
    assert not q and q.keys_in_order() == []


# -- one run through the phases ---------------------------------------------------------------


def test_one_run_through_lifecycle_dispatch_and_apply(tmp_path):
    clock = FakeClock(T0)
    sched = build(tmp_path, two_step_dag(), clock)
    st = sched.state
    run_id = control.trigger(st.store, "two_step")

    lifecycle.start_queued(st, clock())  # rows created, first plan, 'first' ready
    (run,) = st.runs.values()
    assert run.run_id == run_id
    assert [k for k in st.ready.keys_in_order()] == [(run.pk, "first")]

    dispatch.dispatch(st)  # queued in the store, then handed over
    assert st.executor.in_flight() == 1
    with st.store.read() as conn:
        assert {t: s for t, _, s in ti_q.states_of_run(conn, run.pk)}["first"] is TaskState.QUEUED

    apply.apply(st, st.executor.events(0))  # 'first' succeeded; 'second' ready
    assert run.planner.states["first"][-1] is TaskState.SUCCESS
    assert st.ready.keys_in_order() == [(run.pk, "second")]

    dispatch.dispatch(st)
    apply.apply(st, st.executor.events(0))
    assert run.pk not in st.runs  # finished: no longer active here
    with st.store.read() as conn:
        states = {t: s for t, _, s in ti_q.states_of_run(conn, run.pk)}
    assert states == {"first": TaskState.SUCCESS, "second": TaskState.SUCCESS}


def test_missing_pool_holds_dispatch_and_says_why(tmp_path):
    with DAG("pooled") as d:

        @task(pool="warehouse")
        def load() -> None:
            pass

        load()
    clock = FakeClock(T0)
    sched = build(tmp_path, d, clock)
    st = sched.state
    control.trigger(st.store, "pooled")
    lifecycle.start_queued(st, clock())
    dispatch.refresh_pools(st)
    dispatch.dispatch(st)
    assert st.executor.in_flight() == 0
    (run,) = st.runs.values()
    with st.store.read() as conn:
        (row,) = ti_q.list_for_run(conn, run.pk)
    assert row["state"] == "scheduled" and "pools set warehouse" in row["state_reason"]


# -- creation and timers ----------------------------------------------------------------------


def test_create_scheduled_creates_what_is_due_and_notes_the_next(tmp_path):
    clock = FakeClock(T0)
    sched = build(tmp_path, two_step_dag(schedule="@hourly", start_date=T0 - timedelta(days=1)), clock)
    st = sched.state
    creation.create_scheduled(st, clock())
    with st.store.read() as conn:
        rows = runs_q.list_runs(conn, "two_step")
    assert [(r["run_type"], r["logical_date"]) for r in rows] == [("scheduled", T0)]
    creation.create_scheduled(st, clock())  # nothing more is due: no second run
    with st.store.read() as conn:
        assert len(runs_q.list_runs(conn, "two_step")) == 1
    assert st.next_due == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)  # the loop sleeps until the next tick


def test_wait_time_is_the_poll_or_the_first_retry_due(tmp_path):
    clock = FakeClock(T0)
    sched = build(tmp_path, two_step_dag(), clock)
    st = sched.state
    poll = (T0 + timedelta(seconds=5)).timestamp()
    assert timers.wait_time(st, T0, poll) == pytest.approx(5.0)
    assert timers.wait_time(st, T0 + timedelta(seconds=9), poll) == 0.0


def test_heartbeat_and_adopt_counts_live_schedulers(tmp_path):
    clock = FakeClock(T0)
    sched = build(tmp_path, two_step_dag(), clock)
    st = sched.state
    liveness.register(st)
    liveness.heartbeat_and_adopt(st, clock())
    assert st.live_count == 1 and not st.others_live
