"""Callbacks at task and DAG level: called with the context, never changing an outcome."""

from millstream import DAG, SkipTask, task
from millstream.core.states import RunState, TaskState

S = TaskState


def test_task_callbacks_for_each_outcome_with_the_context():
    seen = []

    def record(kind):
        return lambda ctx: seen.append((kind, ctx["ti"].task_id, ctx["ti"].try_number, ctx.get("exception")))

    @task(on_success_callback=record("success"))
    def ok():
        return 1

    @task(retries=1, retry_delay=0, on_retry_callback=record("retry"), on_failure_callback=record("failure"))
    def bad():
        raise ValueError("always")

    @task(on_skipped_callback=[record("skipped"), record("skipped-2")])
    def skipper():
        raise SkipTask("not today")

    with DAG("d") as d:
        ok()
        bad()
        skipper()
    run = d.test()
    assert run.state is RunState.FAILED
    assert sorted(seen) == sorted(
        [
            ("success", "ok", 1, None),
            ("retry", "bad", 1, "ValueError: always"),
            ("failure", "bad", 2, "ValueError: always"),
            ("skipped", "skipper", 1, "not today"),
            ("skipped-2", "skipper", 1, "not today"),
        ]
    )


def test_a_raising_callback_is_logged_and_changes_nothing():
    def broken(ctx):
        raise RuntimeError("callback bug")

    @task(on_success_callback=broken)
    def ok():
        return 1

    with DAG("d") as d:
        ok()
    run = d.test()
    assert run.state is RunState.SUCCESS and run.ti("ok").state is S.SUCCESS
    log = run.ti("ok").log
    assert (
        "on_success_callback broken raised; the outcome stands" in log and "RuntimeError: callback bug" in log
    )


def test_dag_level_callbacks():
    seen = []

    @task
    def fine():
        return 1

    @task
    def boom():
        raise RuntimeError("x")

    with DAG("good", on_success_callback=lambda ctx: seen.append(("success", ctx["run_id"]))) as good:
        fine()
    with DAG("bad", on_failure_callback=lambda ctx: seen.append(("failure", ctx["reason"]))) as bad:
        boom()
    good_run = good.test()
    bad.test()
    assert seen == [
        ("success", good_run.run_id),
        ("failure", "failed: boom (attempt 1 failed: RuntimeError: x)"),
    ]
