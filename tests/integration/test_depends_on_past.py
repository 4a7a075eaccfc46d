"""depends_on_past and wait_for_downstream through the real scheduler, with Airflow 3.3's
rules (airflow/ti_deps/deps/prev_dagrun_dep.py): an instance waits until the same task
succeeded (or was skipped) in the previous run by logical date, and with
wait_for_downstream until that task's direct downstream tasks did too.

Runs of several days are created at once, so that nothing but the rule keeps them in
order; each task writes when it started and ended, and the tests compare those times.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime

from millstream import control
from millstream.core.states import TaskState

from .conftest import wait_for

DAG_FILE = """
import json, os, time
from datetime import datetime, UTC
from pathlib import Path
from millstream import dag, task

OUT = Path({out!r})


def note(what, ds):
    with (OUT / "events.jsonl").open("a") as f:
        f.write(json.dumps({{"what": what, "ds": ds, "t": time.time()}}) + "\\n")


def hold(name, ds):
    # A gate: the test opens it; a deadline instead of a sleep on a fixed time.
    deadline = time.monotonic() + 60
    while not (OUT / f"{{name}}-{{ds}}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@dag(schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), max_active_runs=8)
def dep():
    @task(depends_on_past=True)
    def work(ds=None):
        note("work-start", ds)
        if (OUT / f"fail-{{ds}}").exists():
            raise RuntimeError(f"bad day {{ds}}")
        note("work-end", ds)

    @task
    def after(ds=None):
        hold("after", ds)
        note("after-end", ds)

    work() >> after()


@dag(schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), max_active_runs=8)
def wfd():
    @task(wait_for_downstream=True)
    def work(ds=None):
        note("wfd-work-start", ds)

    @task
    def after(ds=None):
        hold("wfd-after", ds)
        note("wfd-after-end", ds)

    work() >> after()


dep()
wfd()
"""


def D(day: int) -> datetime:
    return datetime(2025, 1, day, tzinfo=UTC)


def trigger_at_once(harness, dag_id: str, days: tuple[int, ...]) -> dict[int, str]:
    """Create the runs with no scheduler looking, then start it: it finds them all at
    once. (Triggered one by one under a running scheduler, a later day could start before
    an earlier day's run exists, and rightly not wait: a first run waits for nothing.)"""
    harness.wait_parsed(dag_id)
    harness.scheduler.stop()
    harness.thread.join(30)
    runs = {d: control.trigger(harness.store, dag_id, logical_date=D(d)) for d in days}
    harness.start(parallelism=4)
    return runs


def events(out):
    path = out / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()]


def at(out, what, ds):
    return next(e["t"] for e in events(out) if e["what"] == what and e["ds"] == ds)


def test_depends_on_past_holds_each_day_until_the_previous_one_succeeded(harness, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "fail-2025-01-02").touch()
    for ds in ("2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"):
        (out / f"after-{ds}").touch()
    harness.write_dag("dep.py", textwrap.dedent(DAG_FILE.format(out=str(out))))
    harness.start(parallelism=4)
    # Created newest first, all at once: only depends_on_past orders them.
    runs = trigger_at_once(harness, "dep", (4, 3, 2, 1))
    assert harness.wait_run("dep", runs[1]) == "success"
    assert harness.wait_run("dep", runs[2]) == "failed"
    # Day 3 waits on day 2's failure, day 4 on day 3 that has not run: both stay scheduled.
    for d in (3, 4):
        wait_for(
            lambda d=d: "depends_on_past" in (harness.tis("dep", runs[d])["work"]["state_reason"] or ""),
            30,
            f"day {d} to say why it waits",
        )
    three = harness.tis("dep", runs[3])["work"]
    assert three["state"] == TaskState.SCHEDULED
    assert "previous run" in three["state_reason"] and "failed" in three["state_reason"]
    four = harness.tis("dep", runs[4])["work"]
    assert (
        four["state"] == TaskState.SCHEDULED
        and "is scheduled, not success or skipped" in four["state_reason"]
    )
    assert not [e for e in events(out) if e["ds"] in ("2025-01-03", "2025-01-04")]
    # Fix day 2 and clear it: days 2, 3 and 4 then run, one after the other.
    (out / "fail-2025-01-02").unlink()
    control.clear(harness.store, "dep", run_id=runs[2], task_regex="^work$", downstream=True)
    harness.scheduler.nudge()
    for d in (2, 3, 4):
        assert harness.wait_run("dep", runs[d], timeout=60) == "success"
    for a, b in (("01", "02"), ("02", "03"), ("03", "04")):
        assert at(out, "work-end", f"2025-01-{a}") <= at(out, "work-start", f"2025-01-{b}")


def test_wait_for_downstream_also_waits_for_the_previous_runs_downstream_tasks(harness, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    harness.write_dag("dep.py", textwrap.dedent(DAG_FILE.format(out=str(out))))
    harness.start(parallelism=4)
    runs = trigger_at_once(harness, "wfd", (2, 1))
    wait_for(lambda: any(e["what"] == "wfd-work-start" for e in events(out)), 30, "day 1's work")
    wait_for(
        lambda: "wait_for_downstream" in (harness.tis("wfd", runs[2])["work"]["state_reason"] or ""),
        30,
        "day 2 to wait for day 1's downstream task",
    )
    assert [e["ds"] for e in events(out) if e["what"] == "wfd-work-start"] == ["2025-01-01"]
    (out / "wfd-after-2025-01-01").touch()
    (out / "wfd-after-2025-01-02").touch()
    for d in (1, 2):
        assert harness.wait_run("wfd", runs[d], timeout=60) == "success"
    assert at(out, "wfd-after-end", "2025-01-01") <= at(out, "wfd-work-start", "2025-01-02")
