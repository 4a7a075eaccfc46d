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
