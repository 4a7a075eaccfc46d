"""Across DAGs under the real scheduler: TriggerDagRunOperator (waiting on its worker or
deferred), ExternalTaskSensor, ExternalTaskMarker, compared with what Airflow 3.3.2 does
(tests/data/standard/cross_dag_airflow_3_3_2.json; how it was recorded is in
record_cross_dag.py beside it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from millstream import control

from .conftest import wait_for

AIRFLOW = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "standard" / "cross_dag_airflow_3_3_2.json").read_text()
)
DAY = datetime(2024, 1, 2, tzinfo=UTC)

DAGS = """
from datetime import datetime, timezone
from millstream import DAG, EmptyOperator, ExternalTaskMarker, ExternalTaskSensor, PythonOperator, TriggerDagRunOperator

S = datetime(2024, 1, 1, tzinfo=timezone.utc)


def work(dag_run=None):
    if dag_run.conf.get("outcome") == "failed":
        raise RuntimeError("the child fails, as asked")


with DAG("target", schedule=None, start_date=S):
    PythonOperator(task_id="work", python_callable=work)

for outcome in ("success", "failed"):
    for deferrable in (False, True):
        with DAG(f"controller_{outcome}_{'deferrable' if deferrable else 'poll'}", schedule=None, start_date=S):
            TriggerDagRunOperator(
                task_id="trigger", trigger_dag_id="target", trigger_run_id=f"child_{outcome}_{deferrable}",
                wait_for_completion=True, poke_interval=0.2, deferrable=deferrable, conf={"outcome": outcome},
            ) >> EmptyOperator(task_id="after")

with DAG("controller_unknown", schedule=None, start_date=S):
    TriggerDagRunOperator(task_id="trigger", trigger_dag_id="no_such_dag")

with DAG("controller_exists", schedule=None, start_date=S):
    TriggerDagRunOperator(task_id="first", trigger_dag_id="target", trigger_run_id="same") >> TriggerDagRunOperator(
        task_id="again", trigger_dag_id="target", trigger_run_id="same"
    )
    TriggerDagRunOperator(task_id="first2", trigger_dag_id="target", trigger_run_id="same2") >> TriggerDagRunOperator(
        task_id="skip_again2", trigger_dag_id="target", trigger_run_id="same2", skip_when_already_exists=True
    )

with DAG("parent", schedule=None, start_date=S):
    EmptyOperator(task_id="start") >> ExternalTaskMarker(
        task_id="marker", external_dag_id="child", external_task_id="wait"
    )

with DAG("child", schedule=None, start_date=S):
    ExternalTaskSensor(
        task_id="wait", external_dag_id="parent", external_task_id="marker", poke_interval=0.1, timeout=60
    ) >> EmptyOperator(task_id="after")
    ExternalTaskSensor(
        task_id="wait_deferred", external_dag_id="parent", external_task_group_id=None, deferrable=True,
        poke_interval=0.1, timeout=60,
    )

with DAG("lost", schedule=None, start_date=S):
    ExternalTaskSensor(task_id="wait", external_dag_id="parent", external_task_id="nope", poke_interval=0.1)
"""


@pytest.fixture
def running(harness):
    harness.write_dag("cross.py", DAGS)
    harness.start(parallelism=6)
    yield harness
    harness.stop()


def _states(harness, dag_id, run_id):
    return {k: v["state"] for k, v in harness.tis(dag_id, run_id).items()}


@pytest.mark.parametrize("dag_id", sorted(AIRFLOW["trigger_dag_run"]))
def test_trigger_dag_run_ends_as_on_airflow(running, dag_id):
    expected = AIRFLOW["trigger_dag_run"][dag_id]
    run_id = running.trigger(dag_id, logical_date=DAY)
    assert running.wait_run(dag_id, run_id, timeout=90) == expected["run"]
    assert _states(running, dag_id, run_id) == expected["tis"]


def test_the_triggered_run_has_the_conf_and_its_id_is_pushed(running):
    run_id = running.trigger("controller_success_deferrable", logical_date=DAY)
    assert running.wait_run("controller_success_deferrable", run_id, timeout=90) == "success"
    child = running.tis("target", "child_success_True")["work"]
    assert child["state"] == "success"
    with running.store.read() as conn:
        from millstream.store import results as results_q
        from millstream.store import runs as runs_q

        pk = runs_q.get_run(conn, "controller_success_deferrable", run_id)["id"]
        assert runs_q.get_run(conn, "target", "child_success_True")["conf"] == {"outcome": "success"}
        assert (
            json.loads(results_q.get_one(conn, pk, "trigger", -1, "trigger_run_id")) == "child_success_True"
        )


def test_an_unknown_dag_fails_the_trigger_task_with_its_name(running):
    run_id = running.trigger("controller_unknown", logical_date=DAY)
    assert running.wait_run("controller_unknown", run_id, timeout=60) == "failed"
    reason = running.tis("controller_unknown", run_id)["trigger"]["state_reason"]
    assert "DAG 'no_such_dag' cannot be triggered" in reason


def test_sensor_waits_for_the_other_dag_and_the_marker_clears_as_on_airflow(running):
    child = running.trigger("child", logical_date=DAY)
    wait_for(
        lambda: _states(running, "child", child).get("wait") in ("running", "up_for_reschedule"), 30, "wait"
    )
    parent = running.trigger("parent", logical_date=DAY)
    assert running.wait_run("parent", parent, timeout=60) == "success"
    assert running.wait_run("child", child, timeout=60) == "success"
    assert _states(running, "child", child) == {
        "wait": "success",
        "after": "success",
        "wait_deferred": "success",
    }
    before = running.tis("child", child)
    cleared = control.clear(running.store, "parent", run_id=parent, task_regex="^marker$")
    expected = AIRFLOW["external_task_marker"]
    assert sorted(f"parent.{c.task_id}" for c in cleared) == expected["cleared"]
    assert running.wait_run("parent", parent, timeout=60) == "success"
    after = running.tis("child", child)
    # As on Airflow 3.3.2: clearing the marker leaves the child DAG's run alone.
    assert {t: (after[t]["state"], after[t]["try_number"]) for t in after} == {
        t: (before[t]["state"], before[t]["try_number"]) for t in before
    }


def test_a_sensor_on_a_task_the_other_dag_lacks_fails_naming_both(running):
    run_id = running.trigger("lost", logical_date=DAY)
    assert running.wait_run("lost", run_id, timeout=60) == "failed"
    reason = running.tis("lost", run_id)["wait"]["state_reason"]
    assert "ExternalTaskSensor 'wait' waits for task(s) ['nope'] that DAG 'parent' does not have" in reason


def test_the_task_pages_link_to_the_other_run(running):
    from millstream.api import links

    run_id = running.trigger("controller_success_poll", logical_date=DAY)
    assert running.wait_run("controller_success_poll", run_id, timeout=90) == "success"
    child = running.trigger("child", logical_date=DAY)
    parent = running.trigger("parent", logical_date=DAY)
    assert running.wait_run("child", child, timeout=60) == "success"
    with running.store.read() as conn:
        trig = links.for_page(conn, "controller_success_poll", run_id, "trigger", -1)
        sensor = links.for_page(conn, "child", child, "wait", -1)
    assert trig["links"] == [
        ("Triggered DAG run: target / child_success_False", "/dags/target/runs/child_success_False")
    ]
    assert sensor["links"] == [
        (
            f"External DAG run: parent / {parent}",
            f"/dags/parent/runs/{parent.replace(':', '%3A').replace('+', '%2B')}",
        )
    ]


def test_the_ui_shows_the_link_and_a_deferred_tasks_trigger(running, tmp_path):
    from fastapi.testclient import TestClient

    from millstream.api import create_app
    from millstream.settings import Settings
    from millstream.store import users as users_q

    with running.store.begin() as conn:
        users_q.create_user(conn, "root", "pw-for-tests", "admin")
        token = users_q.create_token(conn, "root", "tests")
    client = TestClient(
        create_app(Settings.load(environ={"MILLSTREAM_HOME": str(tmp_path)}), running.store),
        headers={"Authorization": f"Bearer {token}"},
    )
    child = running.trigger("child", logical_date=DAY)
    wait_for(lambda: _states(running, "child", child).get("wait_deferred") == "deferred", 30, "deferral")
    page = client.get(f"/dags/child/runs/{child}/tasks/wait_deferred")
    assert page.status_code == 200, page.text
    assert "millstream.sdk.standard.triggers.WorkflowTrigger" in page.text and "the scheduler" in page.text
    parent = running.trigger("parent", logical_date=DAY)
    assert running.wait_run("child", child, timeout=60) == "success"
    page = client.get(f"/dags/child/runs/{child}/tasks/wait")
    assert f"External DAG run: parent / {parent}" in page.text


LATEST = """
from datetime import datetime, timedelta, timezone
from millstream import DAG, EmptyOperator, LatestOnlyOperator

start = (datetime.now(timezone.utc) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
with DAG("latest", schedule="@daily", start_date=start, catchup=True):
    LatestOnlyOperator(task_id="latest_only") >> EmptyOperator(task_id="work")
"""


def test_latest_only_skips_all_but_the_latest_scheduled_run_and_never_a_manual_one(harness):
    """Airflow's rule (LatestOnlyOperator.choose_branch): a scheduled run goes on only while
    now is inside its window; catch-up runs of past days skip; a manual run always goes on."""
    from millstream.store import runs as runs_q

    harness.write_dag("latest.py", LATEST)
    harness.start()
    try:
        harness.wait_parsed("latest")

        def finished():
            with harness.store.read() as conn:
                rows = runs_q.list_runs(conn, "latest", limit=100)
            return rows if len(rows) >= 3 and all(r["state"] == "success" for r in rows) else None

        rows = sorted(wait_for(finished, 60, "the catch-up runs"), key=lambda r: r["logical_date"])
        work = [harness.tis("latest", r["run_id"])["work"]["state"] for r in rows]
        assert work == ["skipped"] * (len(rows) - 1) + ["success"]
        manual = harness.trigger("latest", logical_date=rows[0]["logical_date"] - timedelta(days=30))
        assert harness.wait_run("latest", manual) == "success"
        assert harness.tis("latest", manual)["work"]["state"] == "success"
    finally:
        harness.stop()
