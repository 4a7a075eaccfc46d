"""The API over a real store that a real scheduler has filled: a reference run with its
logs, assets, a DAG file that fails to import, and an admin, a viewer and their tokens."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from millstream.api import create_app
from millstream.settings import Settings
from millstream.store import users as users_q
from tests.integration.conftest import Harness, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PRODUCER = """
from datetime import datetime
from millstream import dag, task, Asset

orders = Asset("orders")

@dag(schedule=None, tags=["assets"])
def make_orders():
    @task(outlets=[orders])
    def write():
        return 1
    write()

@dag(schedule=[orders])
def use_orders():
    @task
    def read():
        print("read the orders")
    read()

@dag(schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False, params={"n": 3})
def with_params():
    @task
    def one(params=None):
        print(params["n"])
    one()

@dag(schedule=None, params={"region": "eu"}, dag_display_name="Templated <b>", owner_links={"ops": "https://ops.example.com"})
def templated():
    from millstream import BashOperator

    BashOperator(
        task_id="say",
        bash_command="echo region={{ params.region }}",
        env={"DB_PASSWORD": "{{ params.region }}-pw", "PLAIN": "x"},
    )

    @task
    def plain(n):
        return n

    plain(1)


make_orders()
use_orders()
with_params()
templated()
"""

BROKEN = "from millstream import dag\n\nx = (\n"


@dataclass
class Api:
    harness: Harness
    app: object
    admin: TestClient
    viewer: TestClient
    anon: TestClient
    run_id: str  # a finished run of the reference DAG


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("api")
    dags = home / "dags"
    dags.mkdir()
    for name in ("process_daily_files.py", "daily_report.py"):
        shutil.copy(EXAMPLES / name, dags)
    (dags / "assets_dags.py").write_text(PRODUCER)
    (dags / "broken.py").write_text(BROKEN)
    h = Harness(home, dags)
    h.start()
    run_id = h.trigger("process_daily_files")
    assert h.wait_run("process_daily_files", run_id) == "success"
    h.wait_parsed("use_orders")
    with h.store.begin() as conn:
        users_q.create_user(conn, "root", "password-1", "admin")
        users_q.create_user(conn, "reader", "password-2", "viewer")
        admin_token = users_q.create_token(conn, "root", "tests")
        viewer_token = users_q.create_token(conn, "reader", "tests")
    settings = Settings.load(environ={"MILLSTREAM_HOME": str(home)})
    app = create_app(settings, h.store)
    admin = TestClient(app, headers={"Authorization": f"Bearer {admin_token}"})
    viewer = TestClient(app, headers={"Authorization": f"Bearer {viewer_token}"})
    anon = TestClient(app)
    try:
        yield Api(h, app, admin, viewer, anon, run_id)
    finally:
        h.stop()


__all__ = ["Api", "wait_for"]
