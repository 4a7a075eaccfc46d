"""Schemathesis generates requests from ``/api/v2/openapi.json``, valid and invalid, with an
admin's JWT, and checks that none gets a 500 and that every success's body is the documented one.

The app under test is built when this module is collected (schemathesis parametrizes from
it): a SQLite store in a temporary folder that a real scheduler filled (a finished run of
the reference DAG with its task instances, logs and XComs; an asset event and the run it
started; a backfill), then stopped, so generated requests meet real rows and nothing moves
under them. Like ``tests/api/test_schema_fuzz.py``, run it on its own (``make test`` does):
its operations share one test id, which pytest-xdist would run only once."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from millstream import control
from millstream.api import create_app
from millstream.settings import Settings
from millstream.store import users as users_q
from tests.api.conftest import BROKEN, PRODUCER
from tests.integration.conftest import Harness

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _build():
    home = Path(tempfile.mkdtemp(prefix="millstream-fuzz-v2-"))
    atexit.register(shutil.rmtree, home, True)
    dags = home / "dags"
    dags.mkdir()
    for name in ("process_daily_files.py", "daily_report.py"):
        shutil.copy(EXAMPLES / name, dags)
    (dags / "assets_dags.py").write_text(PRODUCER)
    (dags / "broken.py").write_text(BROKEN)
    h = Harness(home, dags)
    h.start()
    try:
        assert h.wait_run("process_daily_files", h.trigger("process_daily_files", run_id="fuzz")) == "success"
        assert h.wait_run("make_orders", h.trigger("make_orders", run_id="orders")) == "success"
        h.wait_parsed("use_orders")
    finally:
        h.stop()
    store = h.store
    control.create_backfill(
        store, "daily_report", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC)
    )
    with store.begin() as conn:
        users_q.create_user(conn, "fuzz", "password-f", "admin")
    app = create_app(Settings.load(environ={"MILLSTREAM_HOME": str(home)}), store)
    r = TestClient(app).post("/auth/token", json={"username": "fuzz", "password": "password-f"})
    assert r.status_code == 201, r.text
    return app, r.json()["access_token"]


APP, TOKEN = _build()
AUTH = {"Authorization": f"Bearer {TOKEN}"}
schema = schemathesis.openapi.from_asgi("/api/v2/openapi.json", APP, headers=AUTH)


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_documented_bodies(case):
    """Never a 500; a success's body is as documented. Error bodies are not checked against
    the document: Airflow's own are not as its document says (it declares 422 as FastAPI's
    list of errors, and answers some 422s with a string ``detail``), and v2 answers as Airflow does."""
    response = case.call(headers=AUTH)
    checks = [not_a_server_error]
    if 200 <= response.status_code < 300:
        checks += [content_type_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks, headers=AUTH)
