"""Deferrable tasks under the real scheduler and local workers: a deferred instance holds
no worker slot, its trigger runs on the embedded triggerer (or on `millstream triggerer`
processes), and a triggerer that dies loses no deferred task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from millstream.store import triggers as triggers_q

from .conftest import wait_for

DAG = """
from datetime import datetime, timezone
from millstream import DAG, EmptyOperator, FileSensor

with DAG("wait_file", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc)):
    FileSensor(
        task_id="wait", filepath="{path}", deferrable=True, poke_interval=0.05, timeout=600
    ) >> EmptyOperator(task_id="after")
"""


def _trigger_row(harness, run_id):
    with harness.store.read() as conn:
        rows = triggers_q.for_run(conn, _run_pk(harness, run_id))
    return rows[0] if rows else None


def _run_pk(harness, run_id):
    from millstream.store import runs as runs_q

    with harness.store.read() as conn:
        return runs_q.get_run(conn, "wait_file", run_id)["id"]


def test_a_deferred_task_frees_its_slot_and_resumes_when_the_file_comes(harness, tmp_path):
    target = tmp_path / "arrived.csv"
    harness.write_dag("wait_file.py", DAG.format(path=target))
    scheduler = harness.start(parallelism=1)
    try:
        run_id = harness.trigger("wait_file")
        wait_for(
            lambda: harness.tis("wait_file", run_id).get("wait", {}).get("state") == "deferred",
            30,
            "deferral",
        )
        row = wait_for(lambda: (r := _trigger_row(harness, run_id)) and r["triggerer_id"] and r, 30, "claim")
        assert row["triggerer_id"] == scheduler.id  # the embedded triggerer took it
        assert scheduler.executor.in_flight() == 0  # no worker holds it while it waits
        target.write_text("a,b\n")
        assert harness.wait_run("wait_file", run_id, timeout=60) == "success"
        tis = harness.tis("wait_file", run_id)
        assert (tis["wait"]["state"], tis["wait"]["try_number"]) == ("success", 1)
        assert _trigger_row(harness, run_id) is None
    finally:
        harness.stop()


def _triggerer(harness):
    env = {
        **os.environ,
        "MILLSTREAM_HOME": str(harness.home),
        "MILLSTREAM_DATABASE_URL": harness.url,
        "MILLSTREAM_DAGS_FOLDER": str(harness.dags),
        "MILLSTREAM__SCHEDULER__HEARTBEAT_TIMEOUT": "2",
        "MILLSTREAM_POLL_INTERVAL": "0.1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "millstream.cli", "triggerer"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_a_triggerer_that_dies_loses_no_deferred_task(harness, tmp_path):
    target = tmp_path / "late.csv"
    harness.write_dag("wait_file.py", DAG.format(path=target))
    harness.start(triggerer_capacity=0)  # every trigger goes to `millstream triggerer` processes
    first = _triggerer(harness)
    second = None
    try:
        run_id = harness.trigger("wait_file")
        row = wait_for(lambda: (r := _trigger_row(harness, run_id)) and r["triggerer_id"] and r, 60, "claim")
        assert row["triggerer_id"].startswith("triggerer-")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        second = _triggerer(harness)
        # The dead one's claim goes stale after the heartbeat timeout; the new one takes it.
        wait_for(
            lambda: (
                (r := _trigger_row(harness, run_id)) and r["triggerer_id"] not in (None, row["triggerer_id"])
            ),
            60,
            "the second triggerer to take the trigger over",
        )
        target.write_text("x\n")
        assert harness.wait_run("wait_file", run_id, timeout=60) == "success"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
        harness.stop()


WATCHED = """
from datetime import datetime, timezone
from millstream import DAG, Asset, AssetWatcher, task
from millstream.sdk.standard.triggers import FileDeleteTrigger

flag = Asset("flag", watchers=[AssetWatcher("flag_watcher", FileDeleteTrigger("{path}", poke_interval=0.05))])

with DAG("on_flag", schedule=[flag], start_date=datetime(2024, 1, 1, tzinfo=timezone.utc)):

    @task
    def consume(triggering_asset_events=None):
        return [e.extra["watcher"] for e in triggering_asset_events[flag]]

    consume()
"""


def test_an_asset_watcher_trigger_makes_asset_events_and_keeps_watching(harness, tmp_path):
    from millstream.store import runs as runs_q

    flag = tmp_path / "ready.flag"
    harness.write_dag("on_flag.py", WATCHED.format(path=flag))
    harness.start()
    try:
        harness.wait_parsed("on_flag")

        def runs():
            with harness.store.read() as conn:
                return [r for r in runs_q.list_runs(conn, "on_flag", limit=10) if r["state"] == "success"]

        for n in (1, 2):  # the watcher starts again after each event
            flag.write_text("go")
            wait_for(lambda: not flag.exists(), 30, "the trigger to take the flag")  # noqa: B023
            wait_for(lambda: len(runs()) == n, 60, f"run {n}")  # noqa: B023
        assert all(r["run_type"] == "asset_triggered" for r in runs())
    finally:
        harness.stop()
