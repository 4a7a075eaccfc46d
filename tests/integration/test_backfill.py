"""Backfills and time schedules through the real scheduler."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

from millstream import control
from millstream.core.model import DagSpec, TaskSpec
from millstream.scheduler.parsing import Parsed
from millstream.store import backfills as backfills_q
from millstream.store import runs as runs_q

from .conftest import wait_for

DAILY = """
import json, os, time
from datetime import datetime
from pathlib import Path
from millstream import dag, task

OUT = Path({out!r})
FAIL_ON = Path({fail_on!r})

@dag(schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False)
def daily():
    @task
    def work(ds=None):
        time.sleep({sleep})
        if FAIL_ON.exists() and ds in FAIL_ON.read_text().split():
            raise RuntimeError(f"bad day {{ds}}")
        with OUT.open("a") as f:
            f.write(json.dumps({{"ds": ds, "pid": os.getpid()}}) + "\\n")

    work()

daily()
"""


def D(day: int, month: int = 1) -> datetime:
    return datetime(2025, month, day, tzinfo=UTC)


def write_daily(harness, tmp_path, sleep=0.0):
    out, fail_on = tmp_path / "out.jsonl", tmp_path / "fail_on"
    harness.write_dag(
        "daily.py", textwrap.dedent(DAILY.format(out=str(out), fail_on=str(fail_on), sleep=sleep))
    )
    return out, fail_on


def runs_of(harness, backfill_id):
    with harness.store.read() as conn:
        return [r for r in runs_q.list_runs(conn, "daily", limit=10_000) if r["backfill_id"] == backfill_id]


def backfilled_days(out):
    """Days the task ran for in 2025 (the harness's DAGs are unpaused: today's run is ignored)."""
    return sorted(
        d for d in (json.loads(x)["ds"] for x in out.read_text().splitlines()) if d.startswith("2025")
    )


def wait_backfill(harness, backfill_id, timeout=120):
    def state():
        with harness.store.read() as conn:
            return backfills_q.get(conn, backfill_id)["state"]

    wait_for(lambda: state() in ("completed", "cancelled"), timeout, f"backfill {backfill_id}")
    return state()


def max_overlap(spans):
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_backfill_runs_every_interval_within_its_max_active_runs(harness, tmp_path):
    out, _ = write_daily(harness, tmp_path, sleep=0.15)
    harness.start(parallelism=4)
    harness.wait_parsed("daily")
    bid, items = control.create_backfill(harness.store, "daily", D(1), D(12), max_active_runs=3)
    harness.scheduler.nudge()
    assert wait_backfill(harness, bid) == "completed"
    runs = runs_of(harness, bid)
    assert len(runs) == 12 and all(r["state"] == "success" and r["run_type"] == "backfill" for r in runs)
    assert backfilled_days(out) == [f"2025-01-{d:02d}" for d in range(1, 13)]
    overlap = max_overlap([(r["start_date"], r["end_date"]) for r in runs])
    assert 1 < overlap <= 3


def test_reprocess_behaviors_against_existing_runs(harness, tmp_path):
    out, fail_on = write_daily(harness, tmp_path)
    fail_on.write_text("2025-01-02")
    harness.start()
    harness.wait_parsed("daily")
    first, _ = control.create_backfill(harness.store, "daily", D(1), D(3))
    harness.scheduler.nudge()
    wait_backfill(harness, first)
    assert sorted(r["state"] for r in runs_of(harness, first)) == ["failed", "success", "success"]
    fail_on.write_text("")

    _, plan = control.create_backfill(harness.store, "daily", D(1), D(4), reprocess="none", dry_run=True)
    assert [i.action for i in plan] == ["skip", "skip", "skip", "create"]
    _, plan = control.create_backfill(harness.store, "daily", D(1), D(3), reprocess="completed", dry_run=True)
    assert [i.action for i in plan] == ["rerun", "rerun", "rerun"]

    second, plan = control.create_backfill(harness.store, "daily", D(1), D(3), reprocess="failed")
    assert [i.action for i in plan] == ["skip", "rerun", "skip"]
    harness.scheduler.nudge()
    wait_backfill(harness, second)
    with harness.store.read() as conn:
        states = {
            r["logical_date"].day: r["state"]
            for r in runs_q.list_runs(conn, "daily", limit=100)
            if r["logical_date"].year == 2025
        }
    assert states == {1: "success", 2: "success", 3: "success"}
    # The failed day ran again; the others did not run twice.
    assert backfilled_days(out) == ["2025-01-01", "2025-01-02", "2025-01-03"]


def test_pause_resume_and_cancel(harness, tmp_path):
    write_daily(harness, tmp_path, sleep=0.3)
    harness.start()
    harness.wait_parsed("daily")
    bid, _ = control.create_backfill(harness.store, "daily", D(1), D(10), max_active_runs=1)
    harness.scheduler.nudge()

    def progress():
        with harness.store.read() as conn:
            return backfills_q.progress(conn, bid)

    wait_for(lambda: progress()["success"] >= 1, 30, "the first run")
    control.set_backfill_state(harness.store, bid, "pause")
    wait_for(lambda: progress()["running"] == 0, 30, "the running run to finish")
    paused_at = progress()
    harness.scheduler.nudge()
    harness.scheduler.step(max_wait=0.1)
    assert progress() == paused_at and paused_at["queued"] > 0, "a paused backfill starts nothing"
    control.set_backfill_state(harness.store, bid, "resume")
    harness.scheduler.nudge()
    wait_for(lambda: progress()["success"] > paused_at["success"], 30, "progress after resuming")
    control.set_backfill_state(harness.store, bid, "cancel")
    assert wait_backfill(harness, bid) == "cancelled"
    wait_for(lambda: progress()["running"] == 0, 30, "the last run to finish")
    final = progress()
    assert final["queued"] == 0 and final["failed"] > 0 and final["success"] + final["failed"] == 10


def test_live_runs_and_a_backfill_do_not_starve_each_other(harness, tmp_path):
    write_daily(harness, tmp_path, sleep=0.05)
    harness.start(parallelism=4)
    harness.wait_parsed("daily")
    bid, _ = control.create_backfill(harness.store, "daily", D(1), D(20, 3), max_active_runs=2)
    harness.scheduler.nudge()
    wait_for(
        lambda: len([r for r in runs_of(harness, bid) if r["state"] == "success"]) >= 2, 30, "backfill start"
    )
    # A live run arriving mid-backfill starts without waiting for the backfill's 79 runs.
    live = harness.trigger("daily", run_id="live")
    assert harness.wait_run("daily", live) == "success"
    with harness.store.read() as conn:
        assert backfills_q.progress(conn, bid)["queued"] > 0, (
            "the live run finished while the backfill was busy"
        )
    # And a steady stream of live runs does not stop the backfill.
    for i in range(5):
        harness.trigger("daily", run_id=f"stream{i}")
    assert wait_backfill(harness, bid) == "completed"


def test_a_backfill_survives_a_scheduler_killed_mid_way(tmp_path):
    home, dags, out = tmp_path / "home", tmp_path / "dags", tmp_path / "out.jsonl"
    dags.mkdir()
    (dags / "daily.py").write_text(
        textwrap.dedent(DAILY.format(out=str(out), fail_on=str(tmp_path / "none"), sleep=0.1))
    )
    env = {**os.environ, "MILLSTREAM_HOME": str(home), "MILLSTREAM_DAGS_FOLDER": str(dags)}
    cli = [sys.executable, "-m", "millstream.cli"]
    subprocess.run(
        [
            *cli,
            "backfill",
            "create",
            "--dag-id",
            "daily",
            "--from-date",
            "2025-01-01",
            "--to-date",
            "2025-01-20",
            "--max-active-runs",
            "2",
            "--detach",
        ],
        env=env,
        check=True,
        capture_output=True,
    )

    def start():
        return subprocess.Popen(
            [*cli, "scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    proc = start()
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 4, 60, "some progress")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc = start()
    try:
        shown = wait_for(
            lambda: (
                (
                    p := subprocess.run(
                        [*cli, "backfill", "show", "1"], env=env, capture_output=True, text=True
                    )
                )
                and "completed" in p.stdout
                and p.stdout
            ),
            120,
            "the backfill to complete after the restart",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert " 20 " in shown
    assert sorted(set(backfilled_days(out))) == [f"2025-01-{d:02d}" for d in range(1, 21)]


def test_catchup_pause_and_unpause(harness):
    from millstream.executors.inline import InlineExecutor
    from millstream.scheduler.loop import Scheduler

    now = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    scheduler = Scheduler(
        harness.store,
        InlineExecutor(lambda f, d: None, None),
        logs_folder=str(harness.home),
        paused_on_creation=False,
        clock=lambda: now,
    )

    def spec(dag_id, catchup):
        return DagSpec(
            dag_id,
            (TaskSpec("t"),),
            fileloc="/x.py",
            timetable={"type": "cron", "expr": "@hourly", "tz": "UTC"},
            start_date=(now - timedelta(hours=10)).isoformat(),
            catchup=catchup,
            max_active_runs=3,
        )

    scheduler.record_parsed([Parsed("/x.py", [spec("caught_up", True), spec("latest_only", False)])])
    scheduler.create_scheduled(now)
    with harness.store.read() as conn:
        caught = sorted(r["logical_date"] for r in runs_q.list_runs(conn, "caught_up"))
        latest = [r["logical_date"] for r in runs_q.list_runs(conn, "latest_only")]
    # catchup: the oldest missed ticks first (the first at or after start_date, 00:30 -> 01:00),
    # as many as max_active_runs allows.
    assert caught == [datetime(2026, 1, 1, h, tzinfo=UTC) for h in (1, 2, 3)]
    assert latest == [now.replace(minute=0)]
    # Paused: nothing new, even hours later; unpaused without catchup: only the latest tick.
    control.set_paused(harness.store, "latest_only", True)
    later = now + timedelta(hours=5)
    scheduler.create_scheduled(later)
    with harness.store.read() as conn:
        assert len(runs_q.list_runs(conn, "latest_only")) == 1
    control.set_paused(harness.store, "latest_only", False)
    scheduler.create_scheduled(later)
    with harness.store.read() as conn:
        dates = sorted(r["logical_date"] for r in runs_q.list_runs(conn, "latest_only"))
    assert dates == [now.replace(minute=0), later.replace(minute=0)]


def test_context_knows_the_previous_successful_interval(harness, tmp_path):
    out = tmp_path / "prev.jsonl"
    harness.write_dag(
        "prev.py",
        f"""
        import json
        from datetime import datetime
        from millstream import dag, task

        @dag(schedule="@daily", start_date=datetime(2025, 1, 1))
        def prev():
            @task
            def show(ds=None, prev_data_interval_start_success=None, data_interval_start=None):
                with open({str(out)!r}, "a") as f:
                    prev = prev_data_interval_start_success
                    f.write(json.dumps([ds, prev.isoformat() if prev else None]) + "\\n")

            show()

        prev()
        """,
    )
    harness.start()
    harness.wait_parsed("prev")
    bid, _ = control.create_backfill(harness.store, "prev", D(1), D(3), max_active_runs=1)
    harness.scheduler.nudge()
    wait_backfill(harness, bid)
    seen = sorted(tuple(json.loads(x)) for x in out.read_text().splitlines() if x.startswith('["2025'))
    assert seen == [
        ("2025-01-01", None),
        ("2025-01-02", "2025-01-01T00:00:00+00:00"),
        ("2025-01-03", "2025-01-02T00:00:00+00:00"),
    ]


def test_run_backwards_starts_with_the_newest_interval(harness, tmp_path):
    write_daily(harness, tmp_path)
    harness.start()
    harness.wait_parsed("daily")
    bid, _ = control.create_backfill(
        harness.store, "daily", D(1), D(5), max_active_runs=1, run_backwards=True
    )
    harness.scheduler.nudge()
    wait_backfill(harness, bid)
    runs = sorted(runs_of(harness, bid), key=lambda r: r["start_date"])
    assert [r["logical_date"].day for r in runs] == [5, 4, 3, 2, 1]
