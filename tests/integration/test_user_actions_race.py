"""What a user does to a run (mark, clear) wins over what the scheduler had in mind."""

import json
import textwrap

import pytest

from millstream import control
from millstream.core.states import RunState
from millstream.errors import ConflictError

from .conftest import wait_for

GATED = """
import json, time
from datetime import timedelta
from pathlib import Path
from millstream import dag, task

GATE = Path({gate!r})
LOG = Path({log!r})

def note(x):
    with LOG.open("a") as f:
        f.write(json.dumps(x) + "\\n")

@dag(dagrun_timeout=timedelta(seconds={timeout}))
def gated():
    @task
    def a():
        note("a-start")
        deadline = time.monotonic() + 30
        while not GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        note("a-end")

    @task
    def b():
        note("b")

    @task
    def c():
        note("c")

    a() >> b() >> c()

gated()
"""


def notes(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def write(harness, tmp_path, timeout=3600):
    gate, log = tmp_path / "gate", tmp_path / "log.jsonl"
    harness.write_dag(
        "gated.py", textwrap.dedent(GATED.format(gate=str(gate), log=str(log), timeout=timeout))
    )
    return gate, log


def test_a_report_arriving_after_the_user_marked_the_run_does_not_undo_the_mark(harness, tmp_path):
    gate, log = write(harness, tmp_path)
    harness.start()
    run_id = harness.trigger("gated", run_id="g1")
    wait_for(lambda: "a-start" in notes(log), 30, "a to start")
    control.mark_run(harness.store, "gated", "g1", RunState.FAILED)
    gate.touch()  # a's success report races with the scheduler noticing (and stopping) it
    assert harness.wait_run("gated", run_id) == "failed"
    # a's report (if it finished before it was stopped) is applied or ignored by the
    # scheduler's own thread: wait until it has been, then the mark must still hold.
    wait_for(lambda: not harness.scheduler.executor.in_flight(), 30, "a's attempt to be done with")
    harness.scheduler.nudge()
    tis = harness.tis("gated", "g1")
    assert (tis["a"]["state"], tis["b"]["state"], tis["c"]["state"]) == ("failed", "skipped", "skipped")
    assert "b" not in notes(log)


def test_a_cleared_run_gets_a_fresh_dagrun_timeout_and_forgets_its_mark(harness, tmp_path):
    gate, log = write(harness, tmp_path, timeout=2)
    harness.start()
    run_id = harness.trigger("gated", run_id="t1")
    assert harness.wait_run("gated", run_id, timeout=60) == "failed"  # a never finished in time
    gate.touch()
    control.clear(harness.store, "gated", run_id="t1")
    harness.scheduler.nudge()
    assert harness.wait_run("gated", run_id, timeout=60) == "success"
    assert notes(log).count("c") == 1


def test_clearing_a_mapped_task_with_its_source_while_instances_run_is_refused(harness, tmp_path):
    gate = tmp_path / "gate"
    harness.write_dag(
        "m.py",
        f"""
        import time
        from pathlib import Path
        from millstream import dag, task

        @dag
        def m():
            @task
            def items():
                return [1, 2]

            @task
            def each(x):
                if x == 2:
                    return x  # finishes at once; instance 0 keeps running
                deadline = time.monotonic() + 30
                while not Path({str(gate)!r}).exists() and time.monotonic() < deadline:
                    time.sleep(0.01)

            each.expand(x=items())

        m()
        """,
    )
    harness.start()
    run_id = harness.trigger("m", run_id="m1")
    wait_for(
        lambda: (
            (t := harness.tis("m", "m1")).get("each[0]", {}).get("state") == "running"
            and t.get("each[1]", {}).get("state") == "success"
        ),
        30,
        "each[0] running, each[1] done",
    )
    with pytest.raises(ConflictError, match="instances are still running"):
        control.clear(harness.store, "m", run_id="m1", task_regex="^items$", downstream=True)
    gate.touch()
    assert harness.wait_run("m", run_id) == "success"


def test_clearing_a_sensor_restarts_its_timeout(harness, tmp_path):
    flag = tmp_path / "flag"
    harness.write_dag(
        "s.py",
        f"""
        from pathlib import Path
        from millstream import dag, task

        @dag
        def s():
            @task.sensor(poke_interval=0.1, timeout=1, mode="reschedule")
            def wait():
                return Path({str(flag)!r}).exists()

            wait()

        s()
        """,
    )
    harness.start()
    run_id = harness.trigger("s", run_id="s1")
    assert harness.wait_run("s", run_id, timeout=60) == "failed"
    flag.touch()
    control.clear(harness.store, "s", run_id="s1")
    assert harness.tis("s", "s1")["wait"]["sensor_started_at"] is None
    harness.scheduler.nudge()
    assert harness.wait_run("s", run_id, timeout=60) == "success"


def test_marking_a_running_task_stops_its_attempt(harness, tmp_path):
    from millstream.core.states import TaskState
    from millstream.worker.runner import log_path

    gate, log = write(harness, tmp_path)
    harness.start()
    run_id = harness.trigger("gated", run_id="s1")
    wait_for(lambda: "a-start" in notes(log), 30, "a to start")
    control.mark_task_instances(harness.store, "gated", "s1", "a", TaskState.FAILED)
    attempt_log = log_path(harness.home / "logs", "gated", "s1", "a", -1, 1)

    def stopped():
        try:
            return "stopped: marked failed by a user" in open(attempt_log).read()
        except FileNotFoundError:
            return False

    wait_for(stopped, 30, "the scheduler to stop a's attempt")
    gate.touch()  # a, had it survived, would now note "a-end"
    assert harness.wait_run("gated", run_id) == "failed"
    tis = harness.tis("gated", "s1")
    assert (tis["a"]["state"], tis["b"]["state"], tis["c"]["state"]) == (
        "failed",
        "upstream_failed",
        "upstream_failed",
    )
    assert "a-end" not in notes(log)


def test_marking_a_running_run_stops_its_attempts(harness, tmp_path):
    gate, log = write(harness, tmp_path)
    harness.start()
    run_id = harness.trigger("gated", run_id="s2")
    wait_for(lambda: "a-start" in notes(log), 30, "a to start")
    control.mark_run(harness.store, "gated", "s2", RunState.FAILED)
    from millstream.worker.runner import log_path

    attempt_log = log_path(harness.home / "logs", "gated", "s2", "a", -1, 1)
    wait_for(
        lambda: "stopped: its run was marked by a user" in open(attempt_log).read(), 30, "a to be stopped"
    )
    gate.touch()
    assert harness.wait_run("gated", run_id) == "failed"
    assert "a-end" not in notes(log)


BUSY = """
import time
from pathlib import Path
from millstream import dag, task

GATE = Path({gate!r})
LOG = Path({log!r})

def note(x):
    with LOG.open("a") as f:
        f.write(x + "\\n")

@dag(schedule=None)
def busy():
    @task
    def a():
        note("a-start")
        deadline = time.monotonic() + 60
        while not GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        note("a-end")

    @task
    def items():
        return list(range(300))

    @task
    def m(i):
        time.sleep(0.02)

    a()
    m.expand(i=items())

busy()
"""


def test_a_mark_made_while_other_instances_report_still_stops_the_attempt(harness, tmp_path):
    """The turn that meets the mark is refused as stale and the scheduler rebuilds from the
    store: the rebuild must stop the marked attempt too (found by review: it ran on)."""
    from millstream.core.states import TaskState
    from millstream.worker.runner import log_path

    gate, log = tmp_path / "gate", tmp_path / "log"
    harness.write_dag("busy.py", BUSY.format(gate=str(gate), log=str(log)))
    harness.start(parallelism=4)
    harness.trigger("busy", run_id="r")
    wait_for(lambda: log.exists() and "a-start" in log.read_text(), 30, "a to start")
    wait_for(
        lambda: any(
            k.startswith("m[") and v["state"] == "success" for k, v in harness.tis("busy", "r").items()
        ),
        30,
        "the mapped instances to report",
    )
    control.mark_task_instances(harness.store, "busy", "r", "a", TaskState.FAILED)
    attempt_log = log_path(harness.home / "logs", "busy", "r", "a", -1, 1)
    wait_for(lambda: "stopped: marked failed by a user" in open(attempt_log).read(), 30, "a to be stopped")
    gate.touch()
    assert harness.wait_run("busy", "r") == "failed"
    assert "a-end" not in log.read_text()
