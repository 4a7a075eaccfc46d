"""A DAG file edited mid-run does not change that run: its tasks run the code the run
started with, while new runs get the new code."""

import json

from millstream.store import dags as dags_q
from millstream.store import results as results_q
from millstream.store import runs as runs_q

from .conftest import wait_for

V1 = """
import time
from pathlib import Path
from millstream import dag, task

GATE = Path({gate!r})
SQL = Path(__file__).with_name("q.sql").read_text()  # files next to the DAG file keep working

@dag(schedule=None)
def edited():
    @task
    def first():
        while not GATE.exists():
            time.sleep(0.02)
        return "first"

    @task
    def second(x):
        return "{label}" + SQL

    second(first())

edited()
"""


def test_a_run_keeps_its_code_when_the_file_changes(harness, tmp_path):
    gate = tmp_path / "gate"
    (harness.dags / "q.sql").write_text("")
    harness.write_dag("edited.py", V1.format(gate=str(gate), label="old code"))
    harness.start()
    old_run = harness.trigger("edited")
    wait_for(
        lambda: harness.tis("edited", old_run).get("first", {}).get("state") == "running",
        30,
        "first to start",
    )
    harness.write_dag("edited.py", V1.format(gate=str(gate), label="new code"))

    def new_version():
        with harness.store.read() as conn:
            _, spec = dags_q.latest_spec(conn, "edited")
            row = dags_q.get_dag(conn, "edited")
            return row["latest_version_id"] != runs_q.get_run(conn, "edited", old_run)["dag_version_id"]

    wait_for(new_version, 30, "the edited file to be recorded as a new version")
    gate.write_text("go")
    assert harness.wait_run("edited", old_run) == "success"
    new_run = harness.trigger("edited")
    assert harness.wait_run("edited", new_run) == "success"
    with harness.store.read() as conn:
        got = {
            r: json.loads(
                results_q.get_one(conn, runs_q.get_run(conn, "edited", r)["id"], "second", -1, "return_value")
            )
            for r in (old_run, new_run)
        }
    assert got == {old_run: "old code", new_run: "new code"}
