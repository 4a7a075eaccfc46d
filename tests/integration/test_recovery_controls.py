"""dagrun_timeout and marking task instances by hand, through the real scheduler."""

import json
import textwrap

from millstream import control
from millstream.core.states import TaskState

from .conftest import wait_for

TIMEOUT_DAG = """
import time
from datetime import timedelta
from pathlib import Path
from millstream import dag, setup, task, teardown

OUT = Path({out!r})

@dag(dagrun_timeout=timedelta(seconds=2))
def bounded():
    @setup
    def create():
        return "r"

    @task
    def forever(r):
        time.sleep(120)

    @task
    def after():
        return 1

    @teardown
    def cleanup(r):
        OUT.write_text("cleaned")

    r = create()
    with r >> cleanup(r):
        forever(r) >> after()

bounded()
"""


def test_a_run_past_its_dagrun_timeout_fails_stops_its_work_and_still_cleans_up(harness, tmp_path):
    out = tmp_path / "out"
    harness.write_dag("bounded.py", textwrap.dedent(TIMEOUT_DAG.format(out=str(out))))
    harness.start()
    run_id = harness.trigger("bounded")
    assert harness.wait_run("bounded", run_id, timeout=60) == "failed"
    tis = harness.tis("bounded", run_id)
    assert (
        tis["forever"]["state"] == "failed"
        and "dagrun_timeout of 2s exceeded" in tis["forever"]["state_reason"]
    )
    assert tis["after"]["state"] == "skipped"
    assert tis["cleanup"]["state"] == "success" and out.read_text() == "cleaned"
    with harness.store.read() as conn:
        from millstream.store import runs as runs_q

        assert runs_q.get_run(conn, "bounded", run_id)["state_reason"] == "dagrun_timeout of 2s exceeded"


def test_marking_a_failed_task_success_lets_the_run_carry_on(harness, tmp_path):
    out = tmp_path / "out.jsonl"
    harness.write_dag(
        "markable.py",
        textwrap.dedent(
            f"""
            import json
            from pathlib import Path
            from millstream import dag, task

            @dag
            def markable():
                @task
                def flaky():
                    raise RuntimeError("upstream API down")

                @task
                def downstream():
                    with Path({str(out)!r}).open("a") as f:
                        f.write(json.dumps("downstream ran") + "\\n")

                flaky() >> downstream()

            markable()
            """
        ),
    )
    harness.start()
    run_id = harness.trigger("markable", run_id="k1")
    assert harness.wait_run("markable", run_id) == "failed"
    marked = control.mark_task_instances(harness.store, "markable", "k1", "flaky", TaskState.SUCCESS)
    assert [(m.task_id, m.state) for m in marked] == [("flaky", "failed")]
    # downstream was upstream_failed; clear it so it runs now that flaky counts as done.
    control.clear(harness.store, "markable", run_id="k1", task_regex="^downstream$")
    harness.scheduler.nudge()
    wait_for(lambda: out.exists(), 30, "downstream to run")
    assert harness.wait_run("markable", "k1") == "success"
    assert [json.loads(x) for x in out.read_text().splitlines()] == ["downstream ran"]


def test_clear_variants_select_what_they_say(harness):
    harness.write_dag(
        "abc.py",
        """
        from millstream import dag, task

        @dag
        def abc():
            @task
            def a():
                return 1

            @task
            def b(x):
                raise RuntimeError("b fails")

            @task
            def c(y):
                return y

            c(b(a()))

        abc()
        """,
    )
    harness.start()
    from datetime import UTC, datetime

    r1 = harness.trigger("abc", run_id="r1", logical_date=datetime(2025, 1, 1, tzinfo=UTC))
    r2 = harness.trigger("abc", run_id="r2", logical_date=datetime(2025, 2, 1, tzinfo=UTC))
    assert harness.wait_run("abc", r1) == "failed" and harness.wait_run("abc", r2) == "failed"

    def picked(**kw):
        return sorted((c.run_id, c.task_id) for c in control.clear(harness.store, "abc", dry_run=True, **kw))

    assert picked(run_id="r1", only_failed=True) == [("r1", "b"), ("r1", "c")]
    assert picked(run_id="r1", task_regex="^c$", upstream=True) == [("r1", "a"), ("r1", "b"), ("r1", "c")]
    assert picked(run_id="r1", task_regex="^a$", downstream=True) == [("r1", "a"), ("r1", "b"), ("r1", "c")]
    assert picked(task_regex="^a$", start_date=datetime(2025, 1, 15, tzinfo=UTC)) == [("r2", "a")]
    # A dry run changed nothing.
    assert harness.tis("abc", "r1")["b"]["state"] == "failed"


def test_a_retry_does_not_start_before_its_delay(harness, tmp_path):
    harness.write_dag(
        "delayed.py",
        """
        from datetime import timedelta
        from millstream import dag, task

        @dag
        def delayed():
            @task(retries=1, retry_delay=timedelta(seconds=1))
            def flaky(ti=None):
                if ti.try_number == 1:
                    raise RuntimeError("first try fails")

            flaky()

        delayed()
        """,
    )
    harness.start()
    run_id = harness.trigger("delayed")
    assert harness.wait_run("delayed", run_id) == "success"
    logs = sorted((harness.home / "logs").rglob("task_id=flaky/attempt=*.log"))
    assert len(logs) == 2
    from datetime import datetime

    def stamp(line: str) -> datetime:
        return datetime.fromisoformat(line[1 : line.index("]")])

    first_end = stamp(logs[0].read_text().splitlines()[-1])
    second_start = stamp(logs[1].read_text().splitlines()[0])
    assert (second_start - first_end).total_seconds() >= 1.0
