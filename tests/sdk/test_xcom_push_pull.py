"""ti.xcom_push and ti.xcom_pull in all their forms, and an XComArg formatted into a
template field, give what Airflow 3.3.2 gives (recorded in tests/data/xcom/)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import millstream

DATA = Path(__file__).resolve().parents[1] / "data" / "xcom"
AIRFLOW = json.loads((DATA / "airflow_3_3_2.json").read_text())


def test_push_and_pull_match_airflow(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMPLATES_OUT", str(tmp_path))
    loaded = millstream.load_dags(DATA / "xcom_push_pull.py")
    assert not loaded.errors
    run = loaded.dags["xcom_push_pull"].test(logical_date=datetime(2024, 1, 2, tzinfo=UTC))
    expected = AIRFLOW["states"]["xcom_push_pull"]
    assert run.state.value == expected["run"]
    got = {f"{t.task_id}[{t.map_index}]": t.state.value for t in run.task_instances}
    assert got == expected["tasks"]
    assert json.loads((tmp_path / "pulled.json").read_text()) == AIRFLOW["outputs"]["pulled.json"]


def test_pulling_from_another_run_is_refused_with_the_reason():
    with millstream.DAG("other_run", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:

        @millstream.task
        def pull(ti=None):
            return ti.xcom_pull(task_ids="x", dag_id="some_other_dag")

        pull()
    run = dag.test()
    assert run.state.value == "failed"
    assert "xcom_pull reads results of this DAG run only" in run.ti("pull").log


def test_a_value_that_cannot_be_stored_fails_at_the_push():
    with millstream.DAG("bad_push", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:

        @millstream.task
        def push(ti=None):
            ti.xcom_push(key="k", value=object())

        push()
    run = dag.test()
    assert run.state.value == "failed"
    assert "cannot be stored as a result" in run.ti("push").log
