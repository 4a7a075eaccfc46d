"""Callbacks through the real scheduler: DAG callbacks and callbacks of attempts that ended
outside their worker run in a child process beside the scheduler."""

import textwrap

from .conftest import wait_for

DAG = """
import time
from datetime import timedelta
from pathlib import Path
from millstream import dag, task

OUT = Path({out!r})

def note(text):
    with OUT.open("a") as f:
        f.write(text + "\\n")

def on_dag_failure(ctx):
    note(f"dag failed: {{ctx['reason']}}")

def on_task_failure(ctx):
    note(f"task failed: {{ctx['task_id']}}: {{ctx['reason']}}")

@dag(on_failure_callback=on_dag_failure)
def called_back():
    @task(execution_timeout=timedelta(seconds=1), on_failure_callback=on_task_failure)
    def too_slow():
        time.sleep(60)

    too_slow()

called_back()
"""


def test_timeout_and_dag_failure_callbacks_run_beside_the_scheduler(harness, tmp_path):
    out = tmp_path / "out.txt"
    harness.write_dag("cb.py", textwrap.dedent(DAG.format(out=str(out))))
    harness.start()
    run_id = harness.trigger("called_back")
    assert harness.wait_run("called_back", run_id, timeout=60) == "failed"

    def lines():
        return out.read_text().splitlines() if out.exists() else []

    wait_for(lambda: len(lines()) == 2, 60, "both callbacks")
    assert sorted(lines()) == [
        "dag failed: failed: too_slow (attempt 1 failed: timed out: execution_timeout of 1.0s exceeded)",
        "task failed: too_slow: timed out: execution_timeout of 1.0s exceeded",
    ]
