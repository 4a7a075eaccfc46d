"""The sentence a failed run carries names the task that broke, not its victims."""

from collections import Counter

from millstream.core.model import DagSpec, TaskSpec
from millstream.core.outcome import MAX_NAMED, decide_run_state
from millstream.core.states import RunState, TaskState

S = TaskState


def spec_of(*tasks: TaskSpec) -> DagSpec:
    return DagSpec(dag_id="d", tasks=tasks)


def counts(**by_task: dict[TaskState, int]) -> dict[str, Counter[TaskState]]:
    return {t: Counter(c) for t, c in by_task.items()}


def test_the_failed_task_and_its_error_are_named_not_the_upstream_failed_leaf():
    spec = spec_of(TaskSpec("boom"), TaskSpec("after", upstream=("boom",)))
    state, reason = decide_run_state(
        spec,
        counts(boom={S.FAILED: 1}, after={S.UPSTREAM_FAILED: 1}),
        {"boom": "attempt 1 failed: ZeroDivisionError: division by zero"},
    )
    assert state is RunState.FAILED
    assert reason == "failed: boom (attempt 1 failed: ZeroDivisionError: division by zero)"
    assert "after" not in reason


def test_a_mapped_task_says_how_many_of_its_instances_failed():
    spec = spec_of(TaskSpec("m"))
    _, reason = decide_run_state(spec, counts(m={S.FAILED: 3, S.SUCCESS: 7}), {"m": "cannot expand"})
    assert reason == "failed: m (3 of 10 instances) (cannot expand)"


def test_without_a_failed_task_the_leaves_that_could_not_run_are_named():
    spec = spec_of(TaskSpec("a"), TaskSpec("b", upstream=("a",)))
    _, reason = decide_run_state(spec, counts(a={S.SUCCESS: 1}, b={S.UPSTREAM_FAILED: 1}), {})
    assert reason == "leaf task(s) upstream_failed: b"


def test_a_failed_teardown_neither_fails_the_run_nor_is_blamed():
    spec = spec_of(TaskSpec("work"), TaskSpec("down", upstream=("work",), is_teardown=True))
    state, _ = decide_run_state(spec, counts(work={S.SUCCESS: 1}, down={S.FAILED: 1}), {"down": "x"})
    assert state is RunState.SUCCESS


def test_many_failures_are_counted_and_long_errors_cut():
    tasks = [TaskSpec(f"t{i}") for i in range(MAX_NAMED + 2)]
    _, reason = decide_run_state(
        spec_of(*tasks), counts(**{t.task_id: {S.FAILED: 1} for t in tasks}), {"t0": "x" * 1000}
    )
    assert reason.endswith("; and 2 more failed task(s)")
    assert len(reason) < 1000 and "…" in reason
