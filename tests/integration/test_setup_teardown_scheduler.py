"""Setup and teardown through the real scheduler and worker processes."""

import json
import textwrap
from pathlib import Path

from millstream import control
from millstream.core.states import RunState

from .conftest import wait_for

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "temp_workspace.py").read_text()

MARKING = """
import json, time
from pathlib import Path
from millstream import dag, setup, task, teardown

LOG = Path({log!r})
GATE = Path({gate!r})

def mark(what):
    with LOG.open("a") as f:
        f.write(json.dumps(what) + "\\n")
"""


def marks(path: Path) -> list[str]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_workspace_example_deletes_the_workspace_and_fails_because_of_the_work(harness):
    harness.write_dag("temp_workspace.py", EXAMPLE)
    harness.start()
    run_id = harness.trigger("temp_workspace")
    assert harness.wait_run("temp_workspace", run_id) == "failed"
    tis = harness.tis("temp_workspace", run_id)
    assert tis["delete_workspace"]["state"] == "success"
    assert tis["process[2]"]["state"] == "failed" and tis["process[2]"]["label"] == "corrupt.csv"
    assert [tis[f"process[{i}]"]["state"] for i in (0, 1, 3)] == ["success"] * 3
    with harness.store.read() as conn:
        from millstream.store import runs as runs_q

        assert "process" in runs_q.get_run(conn, "temp_workspace", run_id)["state_reason"]
    workspace = next((harness.home / "logs").rglob("task_id=create_workspace/attempt=1.log")).read_text()
    path = workspace.split("created ")[1].split()[0]
    assert not Path(path).exists(), "the teardown deleted the workspace"


def test_failed_setup_and_failed_teardown(harness, tmp_path):
    log = tmp_path / "log.jsonl"
    harness.write_dag(
        "st.py",
        MARKING.format(log=str(log), gate=str(tmp_path / "gate"))
        + textwrap.dedent(
            """
            @setup
            def broken():
                raise RuntimeError("no capacity")

            @setup
            def fine():
                return "ok"

            @teardown
            def cleanup():
                mark("cleanup")

            @teardown
            def bad_cleanup():
                raise RuntimeError("cleanup failed")

            @task
            def work():
                mark("work")

            @dag
            def setup_fails():
                with broken() >> cleanup():
                    work()

            @dag
            def teardown_fails():
                with fine() >> bad_cleanup():
                    work()

            setup_fails()
            teardown_fails()
            """
        ),
    )
    harness.start()
    r1 = harness.trigger("setup_fails")
    r2 = harness.trigger("teardown_fails")
    assert harness.wait_run("setup_fails", r1) == "failed"
    assert {k: v["state"] for k, v in harness.tis("setup_fails", r1).items()} == {
        "broken": "failed",
        "work": "upstream_failed",
        "cleanup": "upstream_failed",
    }
    assert harness.wait_run("teardown_fails", r2) == "success"
    assert harness.tis("teardown_fails", r2)["bad_cleanup"]["state"] == "failed"


def test_marking_a_run_failed_still_runs_its_teardown(harness, tmp_path):
    log, gate = tmp_path / "log.jsonl", tmp_path / "gate"
    harness.write_dag(
        "marked.py",
        MARKING.format(log=str(log), gate=str(gate))
        + textwrap.dedent(
            """
            @setup
            def create():
                mark("create")
                return "res"

            @task
            def long_work(r):
                mark("work-start")
                deadline = time.monotonic() + 30
                while not GATE.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)

            @task
            def later():
                mark("later")

            @teardown
            def delete(r):
                mark("delete")

            @dag
            def marked():
                r = create()
                with r >> delete(r):
                    long_work(r) >> later()

            marked()
            """
        ),
    )
    harness.start()
    run_id = harness.trigger("marked", run_id="m1")
    wait_for(lambda: "work-start" in marks(log), 30, "work to start")
    control.mark_run(harness.store, "marked", "m1", RunState.FAILED)
    harness.scheduler.nudge()
    wait_for(lambda: "delete" in marks(log), 30, "the teardown to run")
    assert harness.wait_run("marked", run_id) == "failed"
    gate.touch()  # let the abandoned attempt end; what it reports is ignored
    tis = harness.tis("marked", "m1")
    assert tis["long_work"]["state"] == "failed" and tis["later"]["state"] == "skipped"
    assert tis["delete"]["state"] == "success"
    assert "later" not in marks(log)


def test_clearing_work_clears_its_setup_and_teardown(harness, tmp_path):
    log = tmp_path / "log.jsonl"
    harness.write_dag(
        "cleared.py",
        MARKING.format(log=str(log), gate=str(tmp_path / "gate"))
        + textwrap.dedent(
            """
            @setup
            def create():
                mark("create")
                return "res"

            @task
            def first():
                mark("first")

            @task
            def work(r):
                mark("work")

            @teardown
            def delete(r):
                mark("delete")

            @dag
            def cleared():
                r = create()
                with r >> delete(r):
                    first() >> work(r)

            cleared()
            """
        ),
    )
    harness.start()
    run_id = harness.trigger("cleared", run_id="c1")
    assert harness.wait_run("cleared", run_id) == "success"
    done = control.clear(harness.store, "cleared", run_id="c1", task_regex="^work$")
    assert sorted(c.task_id for c in done) == ["create", "delete", "work"]
    harness.scheduler.nudge()
    wait_for(lambda: marks(log).count("delete") == 2, 30, "the teardown to run again")
    assert harness.wait_run("cleared", run_id) == "success"
    assert marks(log).count("create") == 2 and marks(log).count("work") == 2
    assert marks(log).count("first") == 1, "work outside the selection is not rerun"
