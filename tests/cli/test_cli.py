"""The command line, run as a user runs it: a real process, its output and exit code."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import make_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def cli(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLES / "process_daily_files.py", dags)
    return make_cli(tmp_path / "home", dags)


def run_reference_once(cli) -> str:
    """`standalone --trigger` the reference DAG to its end; returns the run id."""
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "millstream.cli",
            "standalone",
            "--trigger",
            "process_daily_files",
            "--exit-after-run",
        ],
        env={**os.environ, "MILLSTREAM_HOME": str(cli.home), "MILLSTREAM_DAGS_FOLDER": str(cli.dags)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return next(line.split("run ")[1] for line in p.stdout.splitlines() if line.startswith("Triggered"))


def test_help_lists_every_command(cli):
    out = cli("--help").stdout
    for cmd in ("db", "dags", "tasks", "scheduler", "standalone"):
        assert cmd in out
    dags_help = cli("dags", "--help").stdout
    for cmd in ("list", "list-import-errors", "test", "trigger", "pause", "unpause", "list-runs"):
        assert cmd in dags_help
    assert "states" in cli("tasks", "--help").stdout and "logs" in cli("tasks", "--help").stdout


def test_dags_test_prints_each_instance_and_the_run_state(cli):
    p = cli("dags", "test", "process_daily_files")
    assert "process_file[2]: success" in p.stdout
    assert "summarize: success" in p.stdout
    assert re.search(r"^Run manual__\S+: success$", p.stdout, re.M)
    assert "Recorded: `millstream dags list-runs process_daily_files`" in p.stdout


def test_dags_test_of_a_failing_run_exits_1(cli):
    (cli.dags / "bad.py").write_text(
        "from millstream import dag, task\n@dag\ndef bad():\n    @task\n    def f():\n        1/0\n    f()\nbad()\n"
    )
    p = cli("dags", "test", "bad", ok=False)
    assert p.returncode == 1 and "f: failed  ZeroDivisionError: division by zero" in p.stdout


def test_db_migrate_list_trigger_pause_and_list_runs(cli):
    assert "Database at revision" in cli("db", "migrate").stdout
    listed = json.loads(cli("dags", "list", "-o", "json").stdout)
    assert listed[0]["dag_id"] == "process_daily_files" and listed[0]["schedule"] == "@daily"
    assert (
        "Triggered process_daily_files: run r1"
        in cli("dags", "trigger", "process_daily_files", "--run-id", "r1", "--conf", '{"x": 1}').stdout
    )
    cli("dags", "unpause", "process_daily_files")
    assert json.loads(cli("dags", "list", "-o", "json").stdout)[0]["paused"] is False
    cli("dags", "pause", "process_daily_files")
    runs = cli("dags", "list-runs", "process_daily_files").stdout
    assert "r1" in runs and "queued" in runs
    states = cli("tasks", "states", "process_daily_files", "r1").stdout
    assert "Run r1: queued" in states


def test_import_errors_are_listed_with_file_and_line(cli):
    (cli.dags / "broken.py").write_text("x = 1\ny = undefined_name\n")
    p = cli("dags", "list-import-errors", ok=False)
    assert p.returncode == 1
    assert f"{cli.dags / 'broken.py'}:2: NameError: name 'undefined_name' is not defined" in p.stdout
    # The good DAG is still listed.
    assert "process_daily_files" in cli("dags", "list").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dags", "trigger", "nope"), "no DAG with id 'nope'"),
        (("dags", "test", "nope"), "no DAG 'nope' in"),
        (("dags", "pause", "nope"), "no DAG with id 'nope'"),
        (("dags", "list-runs", "nope"), "no DAG with id 'nope'"),
        (("dags", "trigger", "process_daily_files", "--conf", "{bad"), "--conf is not valid JSON"),
        (
            ("dags", "trigger", "process_daily_files", "--conf", "[1]"),
            "--conf must be a JSON object, got list",
        ),
        (("tasks", "states", "process_daily_files", "nope"), "has no run 'nope'"),
        (("tasks", "logs", "process_daily_files", "nope", "t"), "has no run 'nope'"),
    ],
)
def test_unknown_ids_and_bad_input_give_one_line_and_exit_1(cli, args, message):
    cli("dags", "list")
    p = cli(*args, ok=False)
    assert p.returncode == 1
    assert message in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_standalone_runs_the_reference_dag_and_prints_the_result(cli):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "millstream.cli",
            "standalone",
            "--trigger",
            "process_daily_files",
            "--exit-after-run",
        ],
        env={**os.environ, "MILLSTREAM_HOME": str(cli.home), "MILLSTREAM_DAGS_FOLDER": str(cli.dags)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "Completed 3 files" in p.stdout
    assert "of process_daily_files: success" in p.stdout
    run_id = next(line.split("run ")[1] for line in p.stdout.splitlines() if line.startswith("Triggered"))
    logs = cli("tasks", "logs", "process_daily_files", run_id, "process_file", "--map-index", "2").stdout
    assert "Processing file_003.csv" in logs
    wrong_index = cli(
        "tasks", "logs", "process_daily_files", run_id, "process_file", "--map-index", "9", ok=False
    )
    assert "has no map index 9; valid: 0..2" in wrong_index.stderr


def test_standalone_keeps_serving_until_ctrl_c_and_then_stops_cleanly(cli):
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "millstream.cli", "standalone"],
        env={**os.environ, "MILLSTREAM_HOME": str(cli.home), "MILLSTREAM_DAGS_FOLDER": str(cli.dags)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Serving: a trigger from another process is picked up and run to success.
        deadline = time.monotonic() + 60
        while "process_daily_files" not in cli("dags", "list").stdout:
            assert time.monotonic() < deadline
        cli("dags", "trigger", "process_daily_files", "--run-id", "served")
        while "success" not in cli("dags", "list-runs", "process_daily_files").stdout:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=30)
                raise AssertionError(f"the standalone server did not run the triggered DAG:\n{out}\n{err}")
            time.sleep(0.05)
        assert proc.poll() is None, "standalone must keep serving"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Stopped." in out and "Traceback" not in err


def test_pools_set_list_delete_and_errors(cli):
    assert "Pool db: 3 slots" in cli("pools", "set", "db", "3", "--description", "warehouse").stdout
    listed = cli("pools", "list").stdout
    assert "db" in listed and "warehouse" in listed and "default_pool" in listed
    assert "cannot be deleted" in cli("pools", "delete", "default_pool", ok=False).stderr
    assert "slots must be 0 or more" in cli("pools", "set", "db", "--", "-1", ok=False).stderr
    cli("pools", "delete", "db")
    assert "no pool 'db'" in cli("pools", "delete", "db", ok=False).stderr


def test_tasks_clear_shows_what_it_will_clear_and_asks(cli):
    run_id = run_reference_once(cli)
    env = {**os.environ, "MILLSTREAM_HOME": str(cli.home), "MILLSTREAM_DAGS_FOLDER": str(cli.dags)}
    args = [
        sys.executable,
        "-m",
        "millstream.cli",
        "tasks",
        "clear",
        "process_daily_files",
        "--run-id",
        run_id,
        "-t",
        "^process_file$",
        "--map-index",
        "1",
        "--downstream",
    ]
    refused = subprocess.run(args, env=env, input="n\n", capture_output=True, text=True, timeout=60)
    assert "process_file  1" in refused.stdout and "summarize" in refused.stdout
    assert "Clear these 2 task instance(s)?" in refused.stdout and "Nothing cleared." in refused.stdout
    done = subprocess.run([*args, "--yes"], env=env, capture_output=True, text=True, timeout=60)
    assert "Cleared 2 task instance(s)." in done.stdout
    states = cli("tasks", "states", "process_daily_files", run_id).stdout
    assert "cleared" in states and "Run " + run_id + ": running" in states
    assert (
        "no run 'nope'"
        in cli("tasks", "clear", "process_daily_files", "--run-id", "nope", "-y", ok=False).stderr
    )
    assert (
        "not a valid regular expression"
        in cli("tasks", "clear", "process_daily_files", "-t", "(", "-y", ok=False).stderr
    )


def test_dags_test_and_tasks_states_mark_setups_and_teardowns(cli):
    shutil.copy(EXAMPLES / "temp_workspace.py", cli.dags)
    p = cli("dags", "test", "temp_workspace", ok=False)
    assert p.returncode == 1  # a file fails on purpose
    assert "create_workspace (setup)" in p.stdout and "delete_workspace (teardown)" in p.stdout
    assert re.search(r"process\s+2 corrupt\.csv\s+failed", p.stdout)


def test_mark_run_commands(cli):
    cli("dags", "list")
    cli("dags", "trigger", "process_daily_files", "--run-id", "m1")
    out = cli("dags", "mark-run-failed", "process_daily_files", "m1").stdout
    assert "Marked run m1 failed" in out
    assert "no run 'nope'" in cli("dags", "mark-run-success", "process_daily_files", "nope", ok=False).stderr


def test_tasks_mark_commands(cli):
    run_id = run_reference_once(cli)
    out = cli(
        "tasks", "mark-failed", "process_daily_files", run_id, "process_file", "--map-index", "1"
    ).stdout
    assert "Marked 1 task instance(s) failed" in out
    states = cli("tasks", "states", "process_daily_files", run_id).stdout
    assert "marked failed by a user" in states
    assert (
        "has no task 'nope'"
        in cli("tasks", "mark-success", "process_daily_files", run_id, "nope", ok=False).stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dag-id", "nope", "--from-date", "2025-01-01", "--to-date", "2025-01-02"],
            "no DAG with id 'nope'",
        ),
        (
            ["--dag-id", "daily_report", "--from-date", "2025-02-01", "--to-date", "2025-01-02"],
            "is after --to-date",
        ),
        (
            ["--dag-id", "daily_report", "--from-date", "2024-01-01", "--to-date", "2025-01-02"],
            "is before the DAG's start_date",
        ),
        (
            ["--dag-id", "temp_workspace", "--from-date", "2025-01-01", "--to-date", "2025-01-02"],
            "has no time schedule",
        ),
        (
            ["--dag-id", "daily_report", "--from-date", "yesterday", "--to-date", "2025-01-02"],
            "is not a date",
        ),
        (
            [
                "--dag-id",
                "daily_report",
                "--from-date",
                "2025-01-01",
                "--to-date",
                "2025-01-02",
                "--conf",
                "[1]",
            ],
            "--conf must be a JSON object",
        ),
    ],
)
def test_backfill_errors_are_one_line_and_create_nothing(cli, args, message):
    for name in ("daily_report.py", "temp_workspace.py"):
        shutil.copy(EXAMPLES / name, cli.dags)
    p = cli("backfill", "create", *args, "--detach", ok=False)
    assert p.returncode == 1 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "daily_report" not in cli("backfill", "list").stdout


def test_backfill_dry_run_list_show_and_state_errors(cli):
    shutil.copy(EXAMPLES / "daily_report.py", cli.dags)
    dry = cli(
        "backfill",
        "create",
        "--dag-id",
        "daily_report",
        "--from-date",
        "2025-01-01",
        "--to-date",
        "2025-01-03",
        "--dry-run",
    ).stdout
    assert "Dry run: 3 to create, 0 to rerun, 0 to skip" in dry and "2025-01-02 00:00:00" in dry
    created = cli(
        "backfill",
        "create",
        "--dag-id",
        "daily_report",
        "--from-date",
        "2025-01-01",
        "--to-date",
        "2025-01-03",
        "--detach",
    ).stdout
    assert "Backfill 1 of daily_report: 3 run(s)" in created
    assert "running" in cli("backfill", "show", "1").stdout
    assert "Backfill 1: paused" in cli("backfill", "pause", "1").stdout
    assert "Backfill 1: cancelled" in cli("backfill", "cancel", "1").stdout
    assert "cannot be resumed" in cli("backfill", "resume", "1", ok=False).stderr
    assert "no backfill 9" in cli("backfill", "show", "9", ok=False).stderr
