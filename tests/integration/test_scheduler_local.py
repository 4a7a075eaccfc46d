"""The real scheduler, local executor (worker processes) and SQLite file, end to end."""

from pathlib import Path

from millstream.store import dags as dags_q
from millstream.store import runs as runs_q

from .conftest import wait_for

SEED = (Path(__file__).resolve().parents[2] / "examples" / "process_daily_files.py").read_text()


def test_reference_dag_through_the_scheduler_and_worker_processes(harness):
    harness.write_dag("seed.py", SEED)
    harness.start()
    run_id = harness.trigger("process_daily_files")
    assert harness.wait_run("process_daily_files", run_id) == "success"
    tis = harness.tis("process_daily_files", run_id)
    assert {k: v["state"] for k, v in tis.items()} == {
        "list_files": "success",
        "process_file[0]": "success",
        "process_file[1]": "success",
        "process_file[2]": "success",
        "summarize": "success",
    }
    # Worker processes, not the scheduler, ran the tasks; each attempt has its own log.
    assert all(t["pid"] and t["hostname"] for t in tis.values())
    safe_run_id = run_id.replace(":", "_").replace("+", "_")
    run_logs = harness.home / "logs" / "dag_id=process_daily_files" / f"run_id={safe_run_id}"
    assert len(list(run_logs.rglob("*.log"))) == 5
    summary_log = next(run_logs.rglob("task_id=summarize/attempt=1.log")).read_text()
    assert "Completed 3 files" in summary_log


def test_broken_dag_files_are_reported_with_file_and_line_and_others_keep_running(harness):
    harness.write_dag("seed.py", SEED)
    harness.write_dag("syntax.py", "from millstream import dag\n\ndef broken(:\n    pass\n")
    harness.write_dag("importerr.py", "import os\nimport no_such_module_here\n")
    harness.write_dag(
        "cycle.py",
        """
        from millstream import DAG, EmptyOperator
        with DAG("cyclic"):
            a = EmptyOperator(task_id="a")
            b = EmptyOperator(task_id="b")
            a >> b >> a
        """,
    )
    harness.write_dag(
        "dup.py",
        """
        from millstream import DAG, EmptyOperator
        with DAG("dupes"):
            EmptyOperator(task_id="same")
            EmptyOperator(task_id="same")
        """,
    )
    harness.write_dag("hang.py", "import time\nwhile True:\n    time.sleep(0.1)\n")
    harness.start(timeout=2.0)
    run_id = harness.trigger("process_daily_files")
    assert harness.wait_run("process_daily_files", run_id) == "success"

    def errors():
        with harness.store.read() as conn:
            rows = dags_q.list_import_errors(conn)
        return (
            {Path(r["filename"]).name: (r["lineno"], r["message"]) for r in rows} if len(rows) == 5 else None
        )

    found = wait_for(errors, 30, "five import errors")
    assert found["syntax.py"][0] == 3 and found["syntax.py"][1].startswith("SyntaxError")
    assert found["importerr.py"] == (2, "ModuleNotFoundError: No module named 'no_such_module_here'")
    # The cycle is reported at the edge that closed it, the duplicate at the second definition.
    assert found["cycle.py"] == (
        6,
        "CycleError: DAG 'cyclic' has a cycle: a >> b >> a (closed by the edge b >> a)",
    )
    assert found["dup.py"] == (
        5,
        "DuplicateTaskIdError: DAG 'dupes' already has a task 'same'; task ids must be unique",
    )
    assert found["hang.py"][0] is None and "took longer than 2s" in found["hang.py"][1]


def test_a_failing_task_ends_failed_with_its_traceback_in_the_log(harness):
    harness.write_dag(
        "fail.py",
        """
        from millstream import dag, task

        @dag
        def failing():
            @task
            def explode():
                raise KeyError("customer_id")

            explode()

        failing()
        """,
    )
    harness.start()
    run_id = harness.trigger("failing")
    assert harness.wait_run("failing", run_id) == "failed"
    log = next((harness.home / "logs").rglob("task_id=explode/attempt=1.log")).read_text()
    assert "Traceback (most recent call last)" in log and "KeyError: 'customer_id'" in log


def test_timedelta_schedule_with_catchup_creates_every_missed_trigger(harness):
    harness.write_dag(
        "hourly.py",
        """
        from datetime import datetime, timedelta, timezone
        from millstream import dag, task

        start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)

        @dag(schedule=timedelta(hours=1), start_date=start, catchup=True)
        def hourly():
            @task
            def work(data_interval_start=None, data_interval_end=None):
                return [data_interval_start.isoformat(), data_interval_end.isoformat()]

            work()

        hourly()
        """,
    )
    harness.start()

    def runs():
        with harness.store.read() as conn:
            rows = runs_q.list_runs(conn, "hourly")
        done = [r for r in rows if r["state"] == "success"]
        return done if len(done) >= 4 else None

    # start, +1h, +2h and +3h (the last full hour) have all passed: four runs, as Airflow 3.
    done = wait_for(runs, 60, "four scheduled runs")
    dates = sorted(r["logical_date"] for r in done)
    assert len(dates) == 4
    assert all((b - a).total_seconds() == 3600 for a, b in zip(dates, dates[1:]))
    assert all(r["data_interval_start"] == r["data_interval_end"] == r["logical_date"] for r in done)
    assert all(r["run_type"] == "scheduled" for r in done)


def test_a_run_keeps_the_dag_version_it_was_created_with(harness):
    path = harness.write_dag(
        "versioned.py",
        """
        from millstream import dag, task

        @dag
        def versioned():
            @task
            def first():
                return 1

            first()

        versioned()
        """,
    )
    harness.start()
    run_id = harness.trigger("versioned")
    assert harness.wait_run("versioned", run_id) == "success"
    # A new task appears in the file; old runs keep their shape, new runs get the new one.
    path.write_text(
        path.read_text()
        .replace("    first()\n", "    first() >> second()\n")
        .replace("    first()\n\nversioned", "    first()\n\nversioned")
        .replace(
            "    @task\n    def first():",
            "    @task\n    def second():\n        return 2\n\n    @task\n    def first():",
        )
    )
    import os
    import time

    os.utime(path, (time.time() + 5, time.time() + 5))

    def new_version():
        with harness.store.read() as conn:
            _, spec = dags_q.latest_spec(conn, "versioned")
        return spec.has_task("second")

    wait_for(new_version, 30, "the new DAG version")
    run2 = harness.trigger("versioned")
    assert harness.wait_run("versioned", run2) == "success"
    assert set(harness.tis("versioned", run_id)) == {"first"}
    assert set(harness.tis("versioned", run2)) == {"first", "second"}
