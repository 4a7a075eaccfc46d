from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream.core.model import DagSpec, MapSource, TaskSpec
from millstream.core.planner import ExpandTask, FinishRun, Output, RunPlanner, SetStates
from millstream.core.readiness import Outcome
from millstream.core.states import TERMINAL_TASK_STATES, RunState, TaskState
from millstream.core.trigger_rules import TriggerRule

S = TaskState
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def spec_of(*tasks: TaskSpec) -> DagSpec:
    return DagSpec("d", tuple(tasks))


def scheduled(planner: RunPlanner) -> list[tuple[str, int]]:
    return [(t, i) for t, by in planner.states.items() for i, s in by.items() if s is S.SCHEDULED]


def run(planner: RunPlanner, task_id: str, idx: int = -1, state: S = S.SUCCESS, output: Output | None = None):
    cmds = planner.record(task_id, idx, S.QUEUED)
    cmds += planner.record(task_id, idx, S.RUNNING)
    if state is S.FAILED:
        return cmds + planner.attempt_failed(task_id, idx, 1, NOW)
    return cmds + planner.record(task_id, idx, state, output=output)


def test_a_chain_runs_in_order_and_finishes_once():
    p = RunPlanner(spec_of(TaskSpec("a"), TaskSpec("b", upstream=("a",))))
    assert isinstance(p.start()[0], SetStates)
    assert scheduled(p) == [("a", -1)]
    run(p, "a")
    assert scheduled(p) == [("b", -1)]
    cmds = run(p, "b")
    assert [c for c in cmds if isinstance(c, FinishRun)] == [
        FinishRun(RunState.SUCCESS, "all leaf tasks succeeded or were skipped")
    ]


def test_failure_propagates_as_upstream_failed_and_fails_the_run():
    p = RunPlanner(spec_of(TaskSpec("a"), TaskSpec("b", upstream=("a",)), TaskSpec("c", upstream=("b",))))
    p.start()
    cmds = run(p, "a", state=S.FAILED)
    assert p.state_of("b") is S.UPSTREAM_FAILED and p.state_of("c") is S.UPSTREAM_FAILED
    assert cmds[-1] == FinishRun(RunState.FAILED, "failed: a (attempt 1 failed)")


def test_retry_waits_for_its_delay_then_reschedules():
    p = RunPlanner(spec_of(TaskSpec("a", retries=2, retry_delay=60)))
    p.start()
    run(p, "a", state=S.FAILED)
    assert p.state_of("a") is S.UP_FOR_RETRY
    assert p.next_retry_at() == NOW + timedelta(seconds=60)
    assert p.due_retries(NOW + timedelta(seconds=59)) == []
    assert p.due_retries(NOW + timedelta(seconds=60))[0].state is S.SCHEDULED


def test_expansion_creates_one_instance_per_element_and_fan_in_waits_for_all():
    p = RunPlanner(
        spec_of(
            TaskSpec("list"),
            TaskSpec("proc", upstream=("list",), map_sources=(MapSource("f", task_id="list"),)),
            TaskSpec("sum", upstream=("proc",)),
        )
    )
    p.start()
    cmds = run(p, "list", output=Output(length=3, type_name="list"))
    assert ExpandTask("proc", 3, S.SCHEDULED, "expanded into 3 instances") in cmds
    assert sorted(scheduled(p)) == [("proc", 0), ("proc", 1), ("proc", 2)]
    run(p, "proc", 0)
    run(p, "proc", 2)
    assert p.state_of("sum") is S.NONE
    assert "2/3 upstream done" in p.verdict("sum").reason
    run(p, "proc", 1)
    assert scheduled(p) == [("sum", -1)]


def test_empty_expansion_skips_the_mapped_task_and_downstream_follows_its_rule():
    p = RunPlanner(
        spec_of(
            TaskSpec("list"),
            TaskSpec("proc", upstream=("list",), map_sources=(MapSource("f", task_id="list"),)),
            TaskSpec("sum", upstream=("proc",)),
            TaskSpec("report", upstream=("proc",), trigger_rule=TriggerRule.ALL_DONE),
        )
    )
    p.start()
    run(p, "list", output=Output(length=0, type_name="list"))
    assert p.state_of("proc") is S.SKIPPED
    assert p.state_of("sum") is S.SKIPPED
    assert p.state_of("report") is S.SCHEDULED


def test_unmappable_value_fails_with_dag_task_argument_and_type():
    p = RunPlanner(
        spec_of(
            TaskSpec("list"),
            TaskSpec("proc", upstream=("list",), map_sources=(MapSource("f", task_id="list"),)),
        )
    )
    p.start()
    cmds = run(p, "list", output=Output(length=None, type_name="int"))
    fail = next(c for c in cmds if isinstance(c, SetStates) and c.state is S.FAILED)
    assert fail.reason == (
        "cannot expand task 'proc' of DAG 'd' over argument 'f': upstream 'list' returned int, "
        "expected a list or dict"
    )


def test_map_length_limit_is_a_clear_error_naming_the_setting():
    p = RunPlanner(
        spec_of(
            TaskSpec("list"),
            TaskSpec("proc", upstream=("list",), map_sources=(MapSource("f", task_id="list"),)),
        ),
        max_map_length=10,
    )
    p.start()
    cmds = run(p, "list", output=Output(length=11, type_name="list"))
    fail = next(c for c in cmds if isinstance(c, SetStates) and c.state is S.FAILED)
    assert "11 instances, over the limit of 10" in fail.reason and "MILLSTREAM_MAX_MAP_LENGTH" in fail.reason


def test_literal_lists_and_products_expand_without_upstream():
    p = RunPlanner(spec_of(TaskSpec("m", map_sources=(MapSource("x", length=3), MapSource("y", length=4)))))
    cmds = p.start()
    assert ExpandTask("m", 12, S.SCHEDULED, "expanded into 12 instances") in cmds


def test_branch_skips_unchosen_direct_downstream_and_join_runs():
    p = RunPlanner(
        spec_of(
            TaskSpec("br", kind="branch"),
            TaskSpec("a", upstream=("br",)),
            TaskSpec("b", upstream=("br",)),
            TaskSpec("b2", upstream=("b",)),
            TaskSpec("join", upstream=("a", "b2"), trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS),
        )
    )
    p.start()
    run(p, "br", output=Output(type_name="str", follow=("a",)))
    assert p.state_of("b") is S.SKIPPED and p.state_of("b2") is S.SKIPPED
    run(p, "a")
    assert p.state_of("join") is S.SCHEDULED


def test_short_circuit_skips_all_descendants_ignoring_their_rules():
    p = RunPlanner(
        spec_of(
            TaskSpec("sc", kind="short_circuit"),
            TaskSpec("b", upstream=("sc",)),
            TaskSpec("c", upstream=("b",), trigger_rule=TriggerRule.ALL_DONE),
        )
    )
    p.start()
    cmds = run(p, "sc", output=Output(type_name="bool", short_circuit=True))
    assert p.state_of("b") is S.SKIPPED and p.state_of("c") is S.SKIPPED
    assert cmds[-1].state is RunState.SUCCESS


def test_rebuilding_from_stored_states_continues_the_run():
    spec = spec_of(TaskSpec("a"), TaskSpec("b", upstream=("a",)))
    p = RunPlanner(spec, [("a", -1, S.SUCCESS), ("b", -1, S.NONE)])
    p.start()
    assert scheduled(p) == [("b", -1)]


# -- property: random DAGs, random outcomes -----------------------------------------------------


@st.composite
def random_dags(draw):
    n = draw(st.integers(1, 7))
    tasks = []
    for i in range(n):
        ups = tuple(f"t{j}" for j in sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)))) if i else ()
        tasks.append(TaskSpec(f"t{i}", upstream=ups, trigger_rule=draw(st.sampled_from(list(TriggerRule)))))
    return spec_of(*tasks)


@settings(max_examples=300, deadline=None)
@given(random_dags(), st.data())
def test_any_dag_with_any_outcomes_finishes_exactly_once_and_decisions_hold(spec, data):
    p = RunPlanner(spec)
    cmds = p.start()
    decided: dict[str, str] = {}
    for _ in range(100):
        ready = scheduled(p)
        if not ready:
            break
        task_id, idx = data.draw(st.sampled_from(ready))
        outcome = data.draw(st.sampled_from([S.SUCCESS, S.FAILED, S.SKIPPED]))
        decided[task_id] = "ran"
        cmds += run(p, task_id, idx, outcome)
    finishes = [c for c in cmds if isinstance(c, FinishRun)]
    assert len(finishes) == 1, "a run finishes exactly once"
    assert all(s in TERMINAL_TASK_STATES for by in p.states.values() for s in by.values())
    for t in spec.tasks:
        final = p.verdict(t.task_id).outcome
        state = p.state_of(t.task_id)
        assert final is not Outcome.WAIT
        if t.task_id in decided:
            assert final is Outcome.RUN
        else:
            assert state in (S.SKIPPED, S.UPSTREAM_FAILED)
            assert final in (Outcome.SKIP, Outcome.UPSTREAM_FAILED)
    leaves_bad = any(
        p.state_of(t.task_id) in (S.FAILED, S.UPSTREAM_FAILED)
        for t in spec.tasks
        if not spec.downstream(t.task_id)
    )
    assert finishes[0].state is (RunState.FAILED if leaves_bad else RunState.SUCCESS)


def test_work_per_finished_instance_is_constant(monkeypatch):
    # Each finished mapped instance re-evaluates only the fan-in task, over per-task counters:
    # the number of instance states the planner inspects grows linearly with N, not N squared.
    import millstream.core.planner as planner_mod

    inspected = 0
    real_waiting = RunPlanner._waiting

    def counting_waiting(self, task_id):
        nonlocal inspected
        inspected += len(self.states[task_id])
        return real_waiting(self, task_id)

    monkeypatch.setattr(RunPlanner, "_waiting", counting_waiting)

    def work(n: int) -> int:
        nonlocal inspected
        p = RunPlanner(
            spec_of(
                TaskSpec("list"),
                TaskSpec("proc", upstream=("list",), map_sources=(MapSource("f", task_id="list"),)),
                TaskSpec("sum", upstream=("proc",)),
            )
        )
        p.start()
        run(p, "list", output=Output(length=n, type_name="list"))
        inspected = 0
        for i in range(n):
            run(p, "proc", i)
        return inspected

    assert planner_mod.RunPlanner is RunPlanner
    small, large = work(1_000), work(10_000)
    assert large <= small * 10 + 10


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_a_task_without_upstream_runs_whatever_its_rule(rule):
    p = RunPlanner(spec_of(TaskSpec("a", trigger_rule=rule)))
    p.start()
    assert p.state_of("a") is S.SCHEDULED


# -- item-level pipelining -----------------------------------------------------------------------


def pipeline_spec(rule: TriggerRule = TriggerRule.ALL_SUCCESS) -> DagSpec:
    return spec_of(
        TaskSpec("list"),
        TaskSpec("a", upstream=("list",), map_sources=(MapSource("x", task_id="list"),)),
        TaskSpec(
            "b",
            upstream=("a",),
            map_sources=(MapSource("x", task_id="a"),),
            aligned=("a",),
            trigger_rule=rule,
        ),
        TaskSpec("sum", upstream=("b",), trigger_rule=TriggerRule.ALL_DONE),
    )


def test_instance_i_downstream_starts_when_instance_i_upstream_succeeded():
    p = RunPlanner(pipeline_spec())
    p.start()
    cmds = run(p, "list", output=Output(length=3, type_name="list"))
    # b expands as soon as a did, its instances waiting on their own a instance.
    assert ExpandTask("b", 3, S.NONE, "expanded into 3 instances") in cmds
    run(p, "a", 0)
    assert p.state_of("b", 0) is S.SCHEDULED
    assert p.state_of("a", 1) is S.SCHEDULED and p.state_of("b", 1) is S.NONE
    assert "0/1 upstream done" in p.verdict("b", 1).reason
    run(p, "a", 1, S.FAILED)
    assert p.state_of("b", 1) is S.UPSTREAM_FAILED


def test_aligned_task_after_an_empty_upstream_is_skipped():
    p = RunPlanner(pipeline_spec())
    p.start()
    run(p, "list", output=Output(length=0, type_name="list"))
    assert p.state_of("a") is S.SKIPPED and p.state_of("b") is S.SKIPPED
    assert p.state_of("sum") is S.SCHEDULED


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(1, 6), st.sampled_from(list(TriggerRule)))
def test_pipelined_and_breadth_first_orders_end_in_the_same_states(data, n, rule):
    outcomes_a = [data.draw(st.sampled_from([S.SUCCESS, S.FAILED, S.SKIPPED])) for _ in range(n)]
    outcomes_b = [data.draw(st.sampled_from([S.SUCCESS, S.FAILED, S.SKIPPED])) for _ in range(n)]

    def finish(order: str) -> dict:
        p = RunPlanner(pipeline_spec(rule))
        p.start()
        run(p, "list", output=Output(length=n, type_name="list"))
        while scheduled(p):
            ready = sorted(scheduled(p))
            if order == "breadth":
                task_id, i = ready[0]  # all of a (sorted first) before any of b
            else:
                task_id, i = data.draw(st.sampled_from(ready))
            outcome = (outcomes_a if task_id == "a" else outcomes_b)[i] if task_id in "ab" else S.SUCCESS
            run(p, task_id, i, outcome)
        return {t: dict(by) for t, by in p.states.items()}

    assert finish("breadth") == finish("random")
