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


FENCED = """
import os, time
from pathlib import Path
from millstream import dag, task

PIDS = Path({pids!r})
RELEASE = Path({release!r})

@dag
def fenced():
    @task(retries=1, retry_delay=0)
    def work(ti=None):
        if ti.try_number == 1:
            PIDS.write_text(str(os.getpid()))
            time.sleep(60)
        return "from the retry"

    @task
    def check(value):
        deadline = time.monotonic() + 60
        while not RELEASE.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert value == "from the retry", value

    check(work())

fenced()
"""


def test_a_paused_worker_loses_its_lease_and_a_late_report_is_fenced_off(harness, tmp_path, caplog):
    from datetime import UTC, datetime

    from millstream.store import results as results_q
    from millstream.store import runs as runs_q
    from millstream.worker.item import AttemptResult, Finished, WorkItem

    pids, release = tmp_path / "pid", tmp_path / "release"
    harness.write_dag("fenced.py", textwrap.dedent(FENCED.format(pids=str(pids), release=str(release))))
    harness.start(parallelism=2, lease_timeout=1.5)
    run_id = harness.trigger("fenced")
    wait_for(pids.exists, 30, "the first attempt to start")
    os.kill(int(pids.read_text()), signal.SIGSTOP)  # paused past its lease: given up and retried
    wait_for(lambda: harness.tis("fenced", run_id)["check"]["state"] == "running", 60, "the retry to succeed")
    tis = harness.tis("fenced", run_id)
    assert tis["work"]["try_number"] == 2 and tis["work"]["state"] == "success"
    log = next((harness.home / "logs").rglob("task_id=work/attempt=1.log")).read_text()
    assert "lost: no heartbeat from worker pid" in log

    # The local pool kills a worker it gave up on; a remote worker could still come back.
    # Its report carries try 1: the scheduler fences it off and the retry's result stands.
    run = next(r for r in harness.scheduler.runs.values() if r.run_id == run_id)
    stale_item = WorkItem(
        run_pk=run.pk,
        dag_id="fenced",
        run_id=run_id,
        task_id="work",
        map_index=-1,
        try_number=1,
        fileloc=run.spec.fileloc,
        run_type="manual",
        logical_date=run.logical_date,
        data_interval_start=None,
        data_interval_end=None,
        conf={},
        params={},
        log_path=str(tmp_path / "stale.log"),
    )
    now = datetime.now(UTC)
    stale = Finished(
        AttemptResult(
            item=stale_item,
            state="success",
            started_at=now,
            ended_at=now,
            results=[("return_value", '"from the stale attempt"', None, "str")],
        )
    )
    harness.scheduler.stop()  # the loop is ours now: hand it the report directly
    harness.thread.join(30)
    with caplog.at_level(logging.WARNING, logger="millstream.scheduler"):
        harness.scheduler.apply([stale])
    assert "ignoring a stale report" in caplog.text
    with harness.store.read() as conn:
        run_row = runs_q.get_run(conn, "fenced", run_id)
        assert results_q.get_one(conn, run_row["id"], "work", -1, "return_value") == '"from the retry"'
    assert harness.tis("fenced", run_id)["work"]["try_number"] == 2
    release.touch()


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


def test_a_worker_that_dies_right_after_taking_an_attempt_does_not_leave_it_queued(harness, tmp_path):
    # The worker dies before any report of it can get out (os._exit at the first line of the
    # task is the closest a test gets to "killed between taking the item and reporting").
    marker = tmp_path / "died-once"
    harness.write_dag(
        "abrupt.py",
        f"""
        import os
        from pathlib import Path
        from millstream import dag, task

        @dag
        def abrupt():
            @task(retries=1, retry_delay=0)
            def t():
                m = Path({str(marker)!r})
                if not m.exists():
                    m.touch()
                    os._exit(9)
                return "ok"

            t()

        abrupt()
        """,
    )
    harness.start(parallelism=1)
    run_id = harness.trigger("abrupt")
    assert harness.wait_run("abrupt", run_id, timeout=60) == "success"
    assert harness.tis("abrupt", run_id)["t"]["try_number"] == 2
