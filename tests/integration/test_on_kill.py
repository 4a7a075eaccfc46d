"""``on_kill`` is called when a running attempt is stopped: its execution_timeout, a user
marking it, and its worker pool shutting down; a bash task's whole process group stops.

The tasks wait on a condition with a deadline (a file that never appears); the tests
wait for the run's state and the files on_kill writes, never for a fixed time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from millstream import DAG, BaseOperator, BashOperator, control
from millstream.core.states import TaskState

from .conftest import Harness, wait_for

DAG_FILE = """
import os
import time
from datetime import timedelta

from millstream import BaseOperator, BashOperator, dag

OUT = {out!r}


class Holder(BaseOperator):
    def execute(self, context):
        open(os.path.join(OUT, f"{{self.task_id}}.started"), "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(os.path.join(OUT, "never")) and time.monotonic() < deadline:
            time.sleep(0.02)

    def on_kill(self):
        with open(os.path.join(OUT, f"{{self.task_id}}.killed"), "w") as f:
            f.write(str(os.getpid()))


@dag(schedule=None)
def stoppable():
    Holder(task_id="times_out", execution_timeout=timedelta(seconds=1))
    Holder(task_id="marked")
    BashOperator(
        task_id="bash_times_out",
        bash_command="echo $$ > {out}/bash.pid; sleep 300 & echo $! > {out}/child.pid; wait",
        execution_timeout=timedelta(seconds=1),
    )


stoppable()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but still listed until its parent reaps it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_timeouts_and_marks_call_on_kill_and_stop_bash_process_groups(harness: Harness, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    harness.write_dag("stoppable.py", DAG_FILE.format(out=str(out)))
    harness.start(parallelism=3)
    run_id = harness.trigger("stoppable")
    wait_for(lambda: (out / "marked.started").exists(), 60, "the task to be marked to start")
    control.mark_task_instances(harness.store, "stoppable", run_id, "marked", TaskState.FAILED)
    harness.scheduler.nudge()
    assert harness.wait_run("stoppable", run_id, timeout=90) == "failed"
    for task_id in ("times_out", "marked"):
        wait_for(lambda t=task_id: (out / f"{t}.killed").exists(), 30, f"on_kill of {task_id}")
    tis = harness.tis("stoppable", run_id)
    assert {t: tis[t]["state"] for t in tis} == {
        "times_out": "failed",
        "marked": "failed",
        "bash_times_out": "failed",
    }
    assert "execution_timeout of 1.0s exceeded" in tis["times_out"]["state_reason"]
    log = (harness.home / "logs").rglob("*")
    texts = "\n".join(p.read_text() for p in log if p.is_file())
    assert texts.count("calling on_kill()") >= 3
    # The bash command and the process it started in the background are both gone.
    bash_pid = int((out / "bash.pid").read_text())
    child_pid = int((out / "child.pid").read_text())
    wait_for(lambda: not _alive(bash_pid) and not _alive(child_pid), 30, "the bash process group to stop")


def test_a_shutting_down_pool_calls_on_kill_of_what_runs(harness: Harness, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    harness.write_dag("stoppable.py", DAG_FILE.format(out=str(out)))
    harness.start(parallelism=3)
    harness.trigger("stoppable")
    wait_for(lambda: (out / "marked.started").exists(), 60, "the task to start")
    harness.stop()
    assert (out / "marked.killed").exists()  # shutdown waits for on_kill (within the grace time)


def test_dag_test_enforces_execution_timeout_and_calls_on_kill(tmp_path: Path):
    killed = []

    class Slow(BaseOperator):
        def execute(self, context):
            deadline = datetime.now(UTC) + timedelta(seconds=60)
            while not (tmp_path / "never").exists() and datetime.now(UTC) < deadline:
                os.sched_yield()

        def on_kill(self):
            killed.append(self.task_id)

    with DAG("slow", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        Slow(task_id="slow", execution_timeout=timedelta(seconds=0.5), retries=1, retry_delay=timedelta(0))
        BashOperator(task_id="fast", bash_command="echo ok", execution_timeout=timedelta(seconds=30))
    run = dag.test()
    assert run.states() == {"slow": TaskState.FAILED, "fast": TaskState.SUCCESS}
    assert run.ti("slow").try_number == 2 and killed == ["slow", "slow"]
    assert "AttemptTimeout: timed out: execution_timeout of 0.5s exceeded" in run.ti("slow").log
