"""Every argument of Airflow 3.3's DAG is honoured or refused with the reason (the table in
sdk/compat.py, checked against the arguments recorded from Airflow 3.3.2)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from millstream import DAG, EmptyOperator
from millstream.core.model import DagSpec
from millstream.errors import DagDefinitionError
from millstream.sdk import compat
from millstream.store import dags as dags_q

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2024, 1, 2, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_table_covers_every_argument_of_airflows_dag():
    recorded = json.loads((ROOT / "tests" / "data" / "airflow" / "dag_args.json").read_text())
    assert list(compat.DAG_ARGUMENTS) == recorded


REFUSED = {
    "max_consecutive_failed_dag_runs": 3,
    "sla_miss_callback": print,
    "access_control": {"team": {"can_read"}},
    "auto_register": False,
    "fail_fast": True,
    "allowed_run_types": ["manual"],
    "task_group": object(),
    "disable_bundle_versioning": True,
    "rerun_with_latest_version": True,
}


def test_the_refused_list_is_the_tables():
    assert set(REFUSED) == {n for n, a in compat.DAG_ARGUMENTS.items() if a.status == compat.REFUSED}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_dag_arguments_fail_the_load_with_file_line_and_reason(name):
    with pytest.raises(DagDefinitionError) as e:
        DAG("refused", schedule=None, start_date=DAY, **{name: REFUSED[name]})
    assert f"{name}=" in str(e.value) and compat.DAG_ARGUMENTS[name].note in str(e.value)
    assert e.value.filename == __file__ and e.value.lineno is not None


def test_airflows_defaults_of_refused_arguments_are_accepted():
    DAG(
        "defaults",
        schedule=None,
        start_date=DAY,
        max_consecutive_failed_dag_runs=0,
        sla_miss_callback=None,
        access_control=None,
        auto_register=True,
        fail_fast=False,
        allowed_run_types=None,
        disable_bundle_versioning=False,
    )


def test_display_name_owner_links_and_paused_upon_creation(store):
    with DAG(
        "named",
        schedule="@daily",
        start_date=DAY,
        dag_display_name="Sales, daily",
        owner_links={"data": "https://wiki.example.com/data", "ops": "mailto:ops@example.com"},
        is_paused_upon_creation=False,
    ) as dag:
        EmptyOperator(task_id="t")
    spec = DagSpec.from_json(dag.to_spec().to_json())
    assert spec.display_name == "Sales, daily" and spec.is_paused_upon_creation is False
    assert spec.owner_links == {"data": "https://wiki.example.com/data", "ops": "mailto:ops@example.com"}
    with DAG("plain", schedule=None, start_date=DAY) as plain:
        EmptyOperator(task_id="t")
    with store.begin() as conn:
        dags_q.sync_parsed(conn, [spec, plain.to_spec()], now=NOW, paused_on_create=True)
    with store.read() as conn:
        rows = {r["dag_id"]: r for r in dags_q.list_dags(conn)}
    assert rows["named"]["is_paused"] is False  # its own choice over the setting
    assert rows["plain"]["is_paused"] is True
    assert rows["named"]["display_name"] == "Sales, daily"


def test_owner_links_must_be_urls_by_name():
    with pytest.raises(DagDefinitionError, match="owner_links must map owner names to URLs"):
        DAG("bad_links", schedule=None, start_date=DAY, owner_links=["https://x"])
