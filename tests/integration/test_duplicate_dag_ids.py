"""Two DAG files defining one dag_id, with the real scheduler: the second file's import
error is in the scheduler log, the API and the UI; runs keep coming from the first file;
deleting the first hands the DAG to the second without touching it."""

from __future__ import annotations

import logging
import textwrap

from fastapi.testclient import TestClient

from millstream.api import create_app
from millstream.settings import Settings
from millstream.store import dags as dags_q
from millstream.store import users as users_q
from tests.integration.conftest import Harness, wait_for


def one_task(dag_id: str, task_id: str) -> str:
    return textwrap.dedent(
        f"""
        from millstream import DAG, EmptyOperator
        with DAG({dag_id!r}, schedule=None):
            EmptyOperator(task_id={task_id!r})
        """
    )


def test_the_second_file_is_an_import_error_everywhere_until_the_first_is_deleted(harness: Harness, caplog):
    caplog.set_level(logging.WARNING, logger="millstream.scheduler")
    a = harness.write_dag("a.py", one_task("shared", "from_a"))
    b = harness.write_dag("b.py", one_task("shared", "from_b"))
    harness.start()

    def error_of_b() -> str | None:
        with harness.store.read() as conn:
            errors = {e["filename"]: e["message"] for e in dags_q.list_import_errors(conn)}
        return errors.get(str(b))

    message = wait_for(error_of_b, 30, "the duplicate to be an import error of b.py")
    assert str(a) in message and "'shared'" in message
    assert any(str(a) in r.getMessage() and str(b) in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]
    run_id = harness.trigger("shared")
    assert harness.wait_run("shared", run_id) == "success"
    assert list(harness.tis("shared", run_id)) == ["from_a"]

    # The API and the UI read the same import errors.
    with harness.store.begin() as conn:
        users_q.create_user(conn, "root", "password-1", "admin")
        token = users_q.create_token(conn, "root", "tests")
    app = create_app(Settings.load(environ={"MILLSTREAM_HOME": str(harness.home)}), harness.store)
    api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    errors = api.get("/api/v1/import-errors").json()
    assert [(e["filename"], e["message"]) for e in errors["items"]] == [(str(b), message)]
    shared = api.get("/api/v1/dags/shared").json()
    assert shared["fileloc"] == str(a) and shared["import_error"] is None
    ui = TestClient(app)
    assert ui.post("/login", data={"username": "root", "password": "password-1"}).status_code == 200
    page = ui.get("/").text
    assert "1 DAG file failed to import" in page and str(b) in page

    a.unlink()

    def owned_by_b() -> bool:
        with harness.store.read() as conn:
            return dags_q.get_dag(conn, "shared")["fileloc"] == str(b) and error_of_b() is None

    wait_for(owned_by_b, 30, "b.py to take the DAG over")
    run_id = harness.trigger("shared")
    assert harness.wait_run("shared", run_id) == "success"
    assert list(harness.tis("shared", run_id)) == ["from_b"]
    assert api.get("/api/v1/import-errors").json()["total"] == 0
