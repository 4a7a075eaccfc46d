"""Workers that die or stop answering: their attempts are retried, and a worker that comes
back late cannot overwrite what the retry did (fencing by try number)."""

import logging
import os
import signal
import textwrap

from .conftest import wait_for

DAG = """
import os, time
from pathlib import Path
from millstream import dag, task

PIDS = Path({pids!r})
GATE = Path({gate!r})
DONE = Path({done!r})

@dag
def lossy():
    @task(retries=1, retry_delay=0)
    def work(ti=None):
        if ti.try_number == 1:
            PIDS.write_text(str(os.getpid()))
            deadline = time.monotonic() + 60
            while not GATE.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            DONE.write_text("stale attempt finished")
            return "from the stale attempt"
        return "from the retry"

    @task
    def check(value):
        assert value == "from the retry", value

    check(work())

lossy()
"""


def test_a_paused_worker_loses_its_lease_and_its_late_report_is_ignored(harness, tmp_path, caplog):
    pids, gate, done = tmp_path / "pid", tmp_path / "gate", tmp_path / "done"
    harness.write_dag("lossy.py", textwrap.dedent(DAG.format(pids=str(pids), gate=str(gate), done=str(done))))
    harness.start(parallelism=2, lease_timeout=1.5)
    run_id = harness.trigger("lossy")
    wait_for(pids.exists, 30, "the first attempt to start")
    pid = int(pids.read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        assert harness.wait_run("lossy", run_id, timeout=60) == "success"
        tis = harness.tis("lossy", run_id)
        assert tis["work"]["try_number"] == 2 and tis["work"]["state"] == "success"
    finally:
        gate.touch()
        os.kill(pid, signal.SIGCONT)
    with caplog.at_level(logging.WARNING, logger="millstream.scheduler"):
        wait_for(done.exists, 30, "the stale attempt to finish")
        wait_for(lambda: "ignoring a stale report" in caplog.text, 30, "the stale report to be fenced off")
    from millstream.store import results as results_q
    from millstream.store import runs as runs_q

    with harness.store.read() as conn:
        run = runs_q.get_run(conn, "lossy", run_id)
        assert results_q.get_one(conn, run["id"], "work", -1, "return_value") == '"from the retry"'
    assert run["state"] == "success"
    log = next((harness.home / "logs").rglob("task_id=work/attempt=1.log")).read_text()
    assert "lost: no heartbeat from worker pid" in log


def test_a_killed_worker_fails_its_attempt_which_is_retried(harness, tmp_path):
    pids, gate, done = tmp_path / "pid", tmp_path / "gate", tmp_path / "done"
    harness.write_dag("lossy.py", textwrap.dedent(DAG.format(pids=str(pids), gate=str(gate), done=str(done))))
    harness.start(parallelism=2)
    run_id = harness.trigger("lossy")
    wait_for(pids.exists, 30, "the first attempt to start")
    os.kill(int(pids.read_text()), signal.SIGKILL)
    assert harness.wait_run("lossy", run_id, timeout=60) == "success"
    tis = harness.tis("lossy", run_id)
    assert tis["work"]["try_number"] == 2
    assert "died" in (next((harness.home / "logs").rglob("task_id=work/attempt=1.log")).read_text())
