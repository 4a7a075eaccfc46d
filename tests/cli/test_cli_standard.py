"""The command line and the standard provider: `dags check` warns about a cross-DAG sensor
that points at a task the other DAG lacks, and `millstream triggerer --help` is there."""

from __future__ import annotations

import json

import pytest

from .conftest import make_cli

TWO_DAGS = """
from datetime import datetime, timezone
from millstream import DAG, EmptyOperator, ExternalTaskSensor

S = datetime(2024, 1, 1, tzinfo=timezone.utc)
with DAG("up", schedule=None, start_date=S):
    EmptyOperator(task_id="real")
with DAG("down", schedule=None, start_date=S):
    ExternalTaskSensor(task_id="wait", external_dag_id="up", external_task_id="nope")
    ExternalTaskSensor(task_id="fine", external_dag_id="up", external_task_id="real")
    ExternalTaskSensor(task_id="elsewhere", external_dag_id="not_deployed_yet", external_task_id="x")
"""


@pytest.fixture
def cli(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "two.py").write_text(TWO_DAGS)
    return make_cli(tmp_path / "home", dags)


def test_dags_check_warns_about_a_sensor_on_a_missing_task(cli):
    out = cli("dags", "check").stdout
    assert "two.py:9: ExternalTaskSensor 'wait' of DAG 'down' points at task(s) ['nope'] that DAG 'up'" in out
    assert "'fine'" not in out and "not_deployed_yet" not in out  # known task; unknown DAG: no warning
    report = json.loads(cli("dags", "check", "--output", "json").stdout)
    assert [w["line"] for w in report[0]["warnings"]] == [9]


def test_the_triggerer_command_exists(cli):
    assert "Several may run at once" in cli("triggerer", "--help").stdout
