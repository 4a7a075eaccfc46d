"""`millstream dags test` as Airflow users run it: the tasks' output as it happens, the
failures with their tracebacks at the end, and the run kept for `tasks logs` later."""

from __future__ import annotations

import textwrap

import pytest

from tests.cli.conftest import make_cli

DEMO = textwrap.dedent(
    """
    from millstream import dag, task

    @dag(schedule=None)
    def demo():
        @task
        def boom():
            print("about to divide")
            return 1 / 0

        @task
        def after(x):
            return x

        @task
        def nums():
            return 3

        @task
        def use(n):
            print("use", n)

        after(boom())
        use.expand(n=nums())

    demo()
    """
)

MARKED = textwrap.dedent(
    """
    import pathlib
    from millstream import dag, task

    @dag(schedule=None)
    def marked():
        @task
        def wait_for_partner():
            pathlib.Path(__file__).with_name("sensor_ran").touch()

        @task
        def work():
            print("working")

        wait_for_partner() >> work()

    marked()
    """
)

CYCLE = textwrap.dedent(
    """
    from millstream import DAG
    from millstream.sdk.operators import EmptyOperator

    with DAG("cyc", schedule=None):
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        a >> b
        b >> a
    """
)


@pytest.fixture
def cli(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    return make_cli(tmp_path / "home", dags)


def test_logs_stream_failures_come_with_tracebacks_and_the_run_is_recorded(cli):
    (cli.dags / "demo.py").write_text(DEMO)
    p = cli("dags", "test", "demo", "2025-01-01", ok=False)
    out = p.stdout
    assert p.returncode == 1
    # The printed line streams, prefixed with the task, before the task's outcome.
    assert "boom │ about to divide" in out
    assert out.index("boom │ about to divide") < out.index("boom: failed")
    # The expand that cannot map says why, where it happens and among the failures.
    assert "use: failed  cannot expand task 'use'" in out
    failures = out[out.index("2 failed task instance(s):") :]
    assert "── boom (try 1): attempt 1 failed: ZeroDivisionError: division by zero" in failures
    assert 'demo.py", line 9, in boom' in failures and "return 1 / 0" in failures
    assert "runner.py" not in failures  # the engine's own frames are left out
    assert "── use (never ran): cannot expand task 'use'" in failures
    # The run's reason names the task that failed, not the upstream_failed leaf.
    assert "failed (failed: boom (attempt 1 failed: ZeroDivisionError" in out
    assert "leaf task(s)" not in out

    listed = cli("dags", "list-runs", "demo").stdout
    assert "2025-01-01 00:00:00" in listed and "failed" in listed
    run_id = next(w for w in listed.split() if w.startswith("manual__"))
    assert "about to divide" in cli("tasks", "logs", "demo", run_id, "boom").stdout

    # --no-save runs the same, and records nothing.
    assert cli("dags", "test", "demo", "--no-save", "-q", ok=False).returncode == 1
    assert cli("dags", "list-runs", "demo").stdout.count("manual__") == 1


def test_mark_success_pattern_skips_running_the_matching_tasks(cli):
    (cli.dags / "marked.py").write_text(MARKED)
    p = cli("dags", "test", "marked", "--no-save", "--mark-success-pattern", "wait_for_.*")
    assert "wait_for_partner │" in p.stdout and "marked success without running" in p.stdout
    assert "work │ working" in p.stdout
    assert not (cli.dags / "sensor_ran").exists()
    # fullmatch, as Airflow: a prefix is not enough.
    cli("dags", "test", "marked", "--no-save", "-q", "--mark-success-pattern", "wait")
    assert (cli.dags / "sensor_ran").exists()


def test_a_file_with_a_cycle_shows_its_error_at_the_edge_that_closed_it(cli):
    (cli.dags / "cyc.py").write_text(CYCLE)
    p = cli("dags", "test", "cyc", ok=False)
    assert p.returncode == 1
    assert f"{cli.dags / 'cyc.py'}:9: CycleError: DAG 'cyc' has a cycle" in p.stderr
    assert "closed by the edge b >> a" in p.stderr


def test_options_airflow_has_and_we_cannot_honour_are_refused(cli):
    (cli.dags / "marked.py").write_text(MARKED)
    p = cli("dags", "test", "marked", "--use-executor", ok=False)
    assert p.returncode == 1 and "--use-executor is not supported" in p.stderr
    assert "is not a date" in cli("dags", "test", "marked", "yesterday", ok=False).stderr
