"""`millstream tasks render`: what an attempt rendered (kept with it, secrets masked), or
the fields rendered now from the DAG file for a run or a logical date."""

import json

import pytest

from tests.cli.conftest import make_cli

DAG = """
from datetime import datetime, UTC
from millstream import DAG, BashOperator, task

with DAG("rf", start_date=datetime(2026, 1, 1, tzinfo=UTC), schedule="@daily", params={"x": 5}):
    @task
    def up():
        return "from-up"

    up() >> BashOperator(
        task_id="b",
        bash_command="echo {{ ds }} {{ params.x }} {{ ti.xcom_pull(task_ids='up') }}",
        env={"API_TOKEN": "{{ ds }}", "WHERE": "{{ dag_run.run_type }}"},
    )
"""


@pytest.fixture
def cli(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "rf.py").write_text(DAG)
    return make_cli(tmp_path / "home", dags)


def test_render_for_a_logical_date_without_a_run(cli):
    p = cli("tasks", "render", "rf", "b", "--logical-date", "2026-03-04")
    assert "rendered now from" in p.stdout and "for logical date 2026-03-04T00:00:00+00:00" in p.stdout
    assert (
        "# property: bash_command\n# ----------------------------------------------------------\necho 2026-03-04 5 None\n"
        in p.stdout
    )
    assert '"API_TOKEN": "***"' in p.stdout and '"WHERE": "manual"' in p.stdout
    assert "2026-03-04" not in p.stdout.split("property: env")[1]
    # Airflow's habit: the logical date as the third argument.
    assert cli("tasks", "render", "rf", "b", "2026-03-04").stdout == p.stdout


def test_render_shows_what_the_attempt_ran_and_now_renders_again(cli):
    cli("standalone", "--trigger", "rf", "--exit-after-run", "--no-api")
    ran = json.loads(cli("tasks", "render", "rf", "b", "--output", "json").stdout)
    assert ran["source"].startswith("attempt 1 of run manual__") and ran["source"].endswith("as it ran")
    assert ran["fields"]["bash_command"].endswith(" 5 from-up")  # the run's own results
    assert ran["fields"]["env"] == {"API_TOKEN": "***", "WHERE": "manual"}
    # The file changed since: --now renders the new text against the same run.
    (cli.dags / "rf.py").write_text(DAG.replace("{{ params.x }}", "x={{ params.x }}"))
    now = json.loads(cli("tasks", "render", "rf", "b", "--output", "json", "--now").stdout)
    assert now["source"].startswith("rendered now from") and " for run manual__" in now["source"]
    assert now["fields"]["bash_command"].endswith(" x=5 from-up")


def test_errors_name_what_is_wrong(cli):
    p = cli("tasks", "render", "rf", "b", ok=False)
    assert p.returncode != 0 and "has no runs yet: give --logical-date" in p.stderr
    p = cli("tasks", "render", "rf", "nope", "--logical-date", "2026-03-04", ok=False)
    assert p.returncode != 0 and "DAG 'rf' has no task 'nope'; its tasks are ['b', 'up']" in p.stderr
    (cli.dags / "rf.py").write_text(DAG.replace("{{ ds }} {{ params.x }}", "{{ ds }} {{ params.nope }}"))
    p = cli("tasks", "render", "rf", "b", "--logical-date", "2026-03-04", ok=False)
    assert p.returncode != 0 and "cannot render template field 'bash_command'" in p.stderr
    assert "has no attribute 'nope'" in p.stderr and "(rf.py:10)" in p.stderr.replace(str(cli.dags) + "/", "")
    assert "Traceback" not in p.stderr
    p = cli("tasks", "render", "rf", "b", "--logical-date", "yesterday", ok=False)
    assert p.returncode != 0 and "is not a date" in p.stderr


def test_task_display_names_show_beside_the_ids(cli):
    (cli.dags / "named.py").write_text(
        "from millstream import BashOperator, dag\n\n"
        "@dag(schedule=None)\n"
        "def named():\n"
        "    BashOperator(task_id='load', bash_command='true', task_display_name='Load the orders')\n\n"
        "named()\n"
    )
    assert "load Load the orders" in cli("dags", "test", "named").stdout
    out = cli("standalone", "--trigger", "named", "--exit-after-run", "--no-api").stdout
    run_id = next(line.split("run ")[1] for line in out.splitlines() if line.startswith("Triggered"))
    assert "load Load the orders" in cli("tasks", "states", "named", run_id).stdout
