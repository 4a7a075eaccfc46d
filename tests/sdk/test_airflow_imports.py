"""The Airflow import hook: an Airflow DAG file loads unmodified, and what it cannot give
is named with the file and line, while the rest of the folder keeps loading."""

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from millstream import load_dags
from millstream.core.states import RunState, TaskState
from millstream.sdk import airflow_imports

AIRFLOW_DAG = textwrap.dedent(
    """
    import pendulum
    from airflow.sdk import DAG, task
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.operators.empty import EmptyOperator
    from airflow.exceptions import AirflowSkipException

    with DAG(
        "ported",
        schedule="@daily",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
    ) as dag:
        say = BashOperator(task_id="say", bash_command="echo day={{ ds_nodash }}")

        @task
        def double(x: int) -> int:
            return 2 * x

        say >> double(21) >> EmptyOperator(task_id="end")
    """
)


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv(airflow_imports.ENV_VAR, "true")
    yield
    airflow_imports.uninstall()


def test_an_airflow_dag_file_loads_and_runs_unmodified(tmp_path, hook):
    (tmp_path / "ported.py").write_text(AIRFLOW_DAG)
    dags, errors = load_dags(tmp_path)
    assert errors == []
    run = dags["ported"].test(logical_date=datetime(2026, 3, 4, tzinfo=UTC))
    assert run.state is RunState.SUCCESS
    assert set(run.states().values()) == {TaskState.SUCCESS}
    assert sorted(run.states()) == ["double", "end", "say"]
    assert "day=20260304" in run.ti("say").log
    assert "42" in run.ti("double").log


def test_a_name_without_equivalent_fails_its_file_with_file_and_line_only(tmp_path, hook):
    (tmp_path / "ported.py").write_text(AIRFLOW_DAG)
    (tmp_path / "needs_s3.py").write_text("import os\n\nfrom airflow.sdk import DAG, Nope\n")
    (tmp_path / "needs_provider.py").write_text(
        "from airflow.providers.amazon.aws.operators.s3 import S3CreateBucketOperator\n"
    )
    dags, errors = load_dags(tmp_path)
    assert list(dags) == ["ported"]
    by_file = {os.path.basename(e.filename): e for e in errors}
    nope = by_file["needs_s3.py"]
    assert nope.lineno == 3
    assert nope.message.endswith(
        f"{tmp_path / 'needs_s3.py'}:3: Millstream has no equivalent of airflow.sdk.Nope"
    )
    prov = by_file["needs_provider.py"]
    assert prov.lineno == 1
    assert "Millstream has no equivalent of airflow.providers.amazon" in prov.message


def test_without_the_hook_airflow_is_not_importable(tmp_path, monkeypatch):
    monkeypatch.setenv(airflow_imports.ENV_VAR, "false")
    (tmp_path / "ported.py").write_text(AIRFLOW_DAG)
    dags, errors = load_dags(tmp_path)
    assert dags == {}
    assert "No module named 'airflow'" in errors[0].message


def _fake_real_airflow(tmp_path):
    pkg = tmp_path / "site" / "airflow"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("REAL = True\n")
    return str(tmp_path / "site")


def test_a_real_airflow_is_never_shadowed_unless_forced(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(_fake_real_airflow(tmp_path))
    sys.modules.pop("airflow", None)
    try:
        assert airflow_imports.real_airflow_installed()
        assert airflow_imports.install("on") is False
        import airflow

        assert airflow.REAL is True
        sys.modules.pop("airflow")
        assert airflow_imports.install("force") is True
        import airflow as forced

        assert "REAL" not in vars(forced)
        assert forced.DAG.__module__.startswith("millstream")
    finally:
        airflow_imports.uninstall()
        sys.modules.pop("airflow", None)


def test_the_mapping_names_only_real_millstream_objects(hook):
    """Every entry of the table resolves: a typo in it would be a name that loads nowhere."""
    for module, names in airflow_imports.MODULES.items():
        for name, target in names.items():
            assert airflow_imports._resolve(target) is not None, (module, name, target)


def test_the_scan_lists_every_missing_name_with_its_line(tmp_path):
    f = tmp_path / "many.py"
    f.write_text(
        "from airflow.sdk import DAG, PartitionedAssetTimetable\n"
        "import airflow.providers.amazon.aws.hooks.s3\n"
        "from airflow.sdk import task, CronPartitionTimetable\n"
        "from millstream import task as t\n"
    )
    assert airflow_imports.scan_file(str(f)) == [
        (1, "airflow.sdk.PartitionedAssetTimetable"),
        (2, "airflow.providers.amazon.aws.hooks.s3"),
        (3, "airflow.sdk.CronPartitionTimetable"),
    ]


def _cli(tmp_path, *args, env_extra=None):
    env = {**os.environ, "MILLSTREAM_HOME": str(tmp_path / "home"), **(env_extra or {})}
    env.pop(airflow_imports.ENV_VAR, None)
    return subprocess.run(
        [sys.executable, "-m", "millstream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dags_check_reports_each_file_and_each_missing_name(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "ported.py").write_text(AIRFLOW_DAG)
    (dags / "needs.py").write_text(
        "from airflow.sdk import DAG\nfrom airflow.sdk import PartitionedAssetTimetable\n"
        "from airflow.sdk import CronPartitionTimetable\n"
    )
    p = _cli(tmp_path, "dags", "check", "-d", str(dags), "--airflow-imports", "--output", "json")
    assert p.returncode == 1, p.stderr
    report = {os.path.basename(r["file"]): r for r in json.loads(p.stdout)}
    assert report["ported.py"]["dags"] == ["ported"]
    assert report["ported.py"]["error"] is None
    assert report["needs.py"]["error"]["line"] == 2
    assert report["needs.py"]["missing"] == [
        {"line": 2, "name": "airflow.sdk.PartitionedAssetTimetable"},
        {"line": 3, "name": "airflow.sdk.CronPartitionTimetable"},
    ]
    text = _cli(tmp_path, "dags", "check", str(dags), "--airflow-imports")  # FOLDER as an argument too
    assert "needs.py:3: no equivalent of airflow.sdk.CronPartitionTimetable" in text.stdout
    assert "1 of 2 file(s) load" in text.stdout
    # Without the flag (and the setting off) the Airflow file is plainly not importable.
    off = _cli(tmp_path, "dags", "check", "-d", str(dags), "--output", "json")
    assert all(r["error"] for r in json.loads(off.stdout))


def test_the_setting_turns_the_hook_on_for_the_scheduler_and_its_children(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "ported.py").write_text(AIRFLOW_DAG)
    home = tmp_path / "home"
    home.mkdir()
    (home / "millstream.toml").write_text("[core]\nairflow_imports = true\n")
    p = _cli(tmp_path, "dags", "list", "-d", str(dags), "--output", "json")
    assert p.returncode == 0, p.stderr
    assert [d["dag_id"] for d in json.loads(p.stdout)] == ["ported"]


STANDARD_PROVIDER = {
    "operators.python": "BranchPythonOperator ShortCircuitOperator PythonVirtualenvOperator ExternalPythonOperator "
    "BranchPythonVirtualenvOperator BranchExternalPythonOperator PythonOperator",
    "operators.branch": "BaseBranchOperator",
    "operators.latest_only": "LatestOnlyOperator",
    "operators.datetime": "BranchDateTimeOperator",
    "operators.weekday": "BranchDayOfWeekOperator",
    "operators.trigger_dagrun": "TriggerDagRunOperator",
    "sensors.external_task": "ExternalTaskSensor ExternalTaskMarker",
    "sensors.date_time": "DateTimeSensor DateTimeSensorAsync",
    "sensors.time_delta": "TimeDeltaSensor TimeDeltaSensorAsync WaitSensor",
    "sensors.weekday": "DayOfWeekSensor",
    "sensors.filesystem": "FileSensor",
    "sensors.python": "PythonSensor",
    "sensors.bash": "BashSensor",
    "triggers.temporal": "DateTimeTrigger TimeDeltaTrigger",
    "triggers.file": "FileTrigger FileDeleteTrigger DirectoryFileDeleteTrigger",
    "triggers.external_task": "DagStateTrigger WorkflowTrigger",
    "utils.weekday": "WeekDay",
}


@pytest.mark.parametrize("module", sorted(STANDARD_PROVIDER))
def test_the_standard_provider_imports_from_its_new_and_old_paths(hook, module):
    import importlib

    import millstream

    airflow_imports.install("force")
    for prefix in ("airflow.providers.standard", "airflow"):
        mod = importlib.import_module(f"{prefix}.{module}")
        for name in STANDARD_PROVIDER[module].split():
            assert getattr(mod, name) is getattr(millstream, name), (prefix, module, name)
    assert importlib.import_module("airflow.sensors.time_sensor").TimeSensor is millstream.TimeSensor
    sdk = importlib.import_module("airflow.sdk")
    for name in (
        "Label",
        "chain_linear",
        "cross_downstream",
        "BaseBranchOperator",
        "AssetWatcher",
        "ObjectStoragePath",
    ):
        assert getattr(sdk, name) is getattr(millstream, name), name
