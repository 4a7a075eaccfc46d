"""Schemathesis generates requests from the API's own OpenAPI document, valid and invalid,
and checks that none gets a 500 and that every status code and body is the documented one.

The app under test is built when this module is collected (schemathesis parametrizes from
it): a SQLite store in a temporary folder with the example DAGs recorded, a finished run
of the reference DAG, and an admin token, so generated requests meet real rows."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from millstream import control
from millstream.api import create_app
from millstream.scheduler.dagsync import sync_folder
from millstream.scheduler.parsing import DagFolder
from millstream.settings import Settings
from millstream.store import Store
from millstream.store import users as users_q

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _build():
    home = Path(tempfile.mkdtemp(prefix="millstream-fuzz-"))
    atexit.register(shutil.rmtree, home, True)
    store = Store(f"sqlite:///{home / 'ms.db'}")
    store.migrate()
    sync_folder(store, DagFolder(EXAMPLES, 30), paused_on_creation=True)
    control.trigger(store, "process_daily_files", run_id="fuzz")
    control.create_backfill(store, "daily_report", *_dates())
    with store.begin() as conn:
        users_q.create_user(conn, "fuzz", "password-f", "admin")
        token = users_q.create_token(conn, "fuzz", "fuzz")
    app = create_app(Settings.load(environ={"MILLSTREAM_HOME": str(home)}), store)
    return app, token


def _dates():
    from datetime import UTC, datetime

    return datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC)


APP, TOKEN = _build()
AUTH = {"Authorization": f"Bearer {TOKEN}"}
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP, headers=AUTH)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_documented_answers(case):
    case.call_and_validate(
        headers=AUTH,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
