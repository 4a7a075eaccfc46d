"""The API on PostgreSQL, which refuses what SQLite lets through (NUL characters in text,
strings longer than their column): such input must be refused with a 4xx, never a 500.
(NUL inside JSON values is stored as JSON's \\u0000 and is accepted.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from millstream.api import create_app
from millstream.scheduler.dagsync import sync_folder
from millstream.scheduler.parsing import DagFolder
from millstream.settings import Settings
from millstream.store import Store
from millstream.store import users as users_q

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def client(pg_url: str, tmp_path: Path):
    store = Store(pg_url)
    store.migrate()
    sync_folder(store, DagFolder(EXAMPLES, 30), paused_on_creation=True)
    with store.begin() as conn:
        users_q.create_user(conn, "pg", "password-p", "admin")
        token = users_q.create_token(conn, "pg", "t")
    app = create_app(Settings.load(environ={"MILLSTREAM_HOME": str(tmp_path)}), store)
    yield TestClient(app, headers={"Authorization": f"Bearer {token}"})
    store.dispose()


@pytest.mark.postgres
def test_the_api_on_postgresql(client: TestClient):
    r = client.post("/api/v1/dags/process_daily_files/runs", json={"conf": {"k": "v"}, "run_id": "pg1"})
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/dags/process_daily_files/runs").json()["total"] == 1
    assert client.post("/api/v1/dags/process_daily_files/runs", json={"run_id": "pg1"}).status_code == 409
    grid = client.get("/api/v1/dags/process_daily_files/grid").json()
    assert grid["runs"][0]["run_id"] == "pg1"
    r = client.post(
        "/api/v1/backfills",
        json={"dag_id": "daily_report", "from_date": "2025-01-01", "to_date": "2025-01-03"},
    )
    assert r.status_code == 201 and r.json()["total_runs"] == 3
    assert (
        client.post("/api/v1/assets/events", json={"asset": "incoming_csv", "extra": {"a": 1}}).status_code
        == 201
    )
    assert client.put("/api/v1/pools/pg", json={"slots": 2}).status_code == 200
    dags = client.get("/api/v1/dags", params={"limit": 2}).json()
    assert len(dags["items"]) == 2 and dags["total"] >= 5


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/api/v1/dags/process_daily_files/runs", {"run_id": "nul\x00here"}),
        ("PUT", "/api/v1/pools/p", {"slots": 1, "description": "a\x00"}),
        ("PUT", "/api/v1/pools/" + "p" * 300, {"slots": 1}),
        ("GET", "/api/v1/dags/" + "d" * 5000, None),
        ("GET", "/api/v1/assets/events?asset=" + "a" * 2000, None),
        (
            "POST",
            "/api/v1/backfills",
            {"dag_id": "d\x00", "from_date": "2025-01-01", "to_date": "2025-01-02"},
        ),
        ("POST", "/api/v1/assets/events", {"asset": "incoming\x00csv"}),
    ],
)
def test_what_postgresql_refuses_is_a_422_or_404(client: TestClient, method, url, body):
    r = client.request(method, url, json=body)
    assert r.status_code in (404, 422), r.text
    assert r.json()["detail"]


@pytest.mark.postgres
def test_nul_inside_json_values_is_stored_and_read_back(client: TestClient):
    r = client.post(
        "/api/v1/dags/process_daily_files/runs", json={"conf": {"k\x00": "v\x00"}, "run_id": "nul"}
    )
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/dags/process_daily_files/runs/nul").json()["conf"] == {"k\x00": "v\x00"}
    r = client.post("/api/v1/assets/events", json={"asset": "incoming_csv", "extra": {"x": "\x00"}})
    assert r.status_code == 201, r.text
