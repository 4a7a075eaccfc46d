"""A custom operator and a custom sensor end the same under every way Millstream runs
tasks: ``dag.test()``, the scheduler with the local executor, and Celery workers.

The DAG file is tests/data/operators/custom_operators.py; what Airflow 3.3.2 gives for it
is in airflow_3_3_2.json beside it.
"""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

import millstream

from .test_celery import CeleryCluster

DATA = Path(__file__).resolve().parents[1] / "data" / "operators"
AIRFLOW = json.loads((DATA / "airflow_3_3_2.json").read_text())
DAY = datetime(2024, 1, 2, tzinfo=UTC)
DAG_ID = "custom_operators"


def expected_report(folder: Path) -> dict:
    """Airflow's report, with the folder it wrote into replaced by ``folder``."""
    text = json.dumps(AIRFLOW["outputs"]["report.json"])
    return json.loads(text.replace(AIRFLOW["folder"], str(folder)))


def expected_states() -> dict[str, str]:
    return {k.removesuffix("[-1]"): v for k, v in AIRFLOW["states"][DAG_ID]["tasks"].items()}


def copy_dag(folder: Path) -> None:
    for name in ("custom_operators.py", "load.sql"):
        shutil.copy(DATA / name, folder / name)


def test_dag_test_matches_airflow(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMPLATES_OUT", str(tmp_path))
    loaded = millstream.load_dags(DATA / "custom_operators.py")
    assert not loaded.errors
    run = loaded.dags[DAG_ID].test(logical_date=DAY)
    assert run.state.value == AIRFLOW["states"][DAG_ID]["run"]
    assert {k: v.value for k, v in run.states().items()} == expected_states()
    assert json.loads((tmp_path / "report.json").read_text()) == expected_report(tmp_path)


def test_the_local_executor_gives_the_same(harness, tmp_path):
    copy_dag(harness.dags)
    out = tmp_path / "out"
    harness.start()
    run_id = harness.trigger(DAG_ID, conf={"folder": str(out)}, logical_date=DAY)
    assert harness.wait_run(DAG_ID, run_id, timeout=90) == AIRFLOW["states"][DAG_ID]["run"]
    assert {k: v["state"] for k, v in harness.tis(DAG_ID, run_id).items()} == expected_states()
    assert json.loads((out / "report.json").read_text()) == expected_report(out)


@pytest.mark.usefixtures("pg_url")
def test_celery_workers_give_the_same(tmp_path, pg_url):
    c = CeleryCluster(tmp_path, pg_url)
    copy_dag(c.dags)
    out = tmp_path / "out"
    try:
        c.start(workers=1)
        c.wait_workers(1)
        run_id = c.trigger(DAG_ID, conf={"folder": str(out)}, logical_date=DAY)
        assert c.wait_run(DAG_ID, run_id) == AIRFLOW["states"][DAG_ID]["run"]
        got = {
            (t["task_id"] if t["map_index"] < 0 else f"{t['task_id']}[{t['map_index']}]"): t["state"]
            for t in c.tis(DAG_ID, run_id)
        }
        assert got == expected_states()
        assert json.loads((out / "report.json").read_text()) == expected_report(out)
    finally:
        c.stop()
