"""The connections issue's acceptance: one DAG that reads a Variable, renders a
connection's host, runs SQL on PostgreSQL and MariaDB, calls an HTTP endpoint, writes with
ObjectStoragePath, and on failure notifies by SMTP and Slack webhook — green under
`dags test`, `standalone` and Celery workers, every credential from Variables and
Connections in the store (encrypted with one shared Fernet key), none in the DAG file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from millstream.sdk import secrets
from millstream.sdk.connection import Connection
from millstream.store import Store, crypto
from millstream.store import secret_values as sv

from ..conftest import MARIADB_URL, PG_URL, need_mariadb, need_postgres
from .test_notifiers import Inbox, Receiver

DAG_FILE = Path(__file__).resolve().parents[1] / "data" / "secrets" / "dag_connected.py"


class RowsApi:
    """A real HTTP service: GET /rows/<date> answers JSON, with bearer auth checked."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.headers.get("Authorization") != "Basic YXBpdXNlcjphcGktcGFzcy0xMjM=":
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"date": self.path.rsplit("/", 1)[-1], "rows": 42}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Servers, tables and a Fernet key shared by every process of the test."""
    need_postgres()
    need_mariadb()
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    key = crypto.generate()
    monkeypatch.setenv("MILLSTREAM__CORE__FERNET_KEY", key)
    table = f"ms_accept_{uuid.uuid4().hex[:8]}"
    inbox, smtp_port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    slack, api = Receiver(), RowsApi()
    out = tmp_path / "lake"
    w = {
        "table": table,
        "inbox": inbox,
        "slack": slack,
        "out": out,
        "variables": {"accept_table": table, "accept_out": f"file://{out}"},
        "connections": [
            Connection.from_uri(PG_URL.replace("postgresql+psycopg", "postgres"), "warehouse_pg"),
            Connection.from_uri(MARIADB_URL.replace("mysql+pymysql", "mysql"), "warehouse_maria"),
            Connection(
                conn_id="rows_api",
                conn_type="http",
                host="127.0.0.1",
                port=api.port,
                login="apiuser",
                password="api-pass-123",
            ),
            Connection(conn_id="lake", conn_type="fs", extra={"auto_mkdir": True}),
            Connection(
                conn_id="smtp_default",
                conn_type="smtp",
                host="127.0.0.1",
                port=smtp_port,
                extra={"disable_ssl": True, "disable_tls": True, "from_email": "ms@example.com"},
            ),
            Connection(
                conn_id="slack_default",
                conn_type="slackwebhook",
                host=f"http://127.0.0.1:{slack.port}",
                password="T1/B1/secret-hook",
            ),
        ],
    }
    yield w
    smtp.stop()
    slack.close()
    api.close()
    for url in (PG_URL, MARIADB_URL):
        engine = sa.create_engine(url)
        with engine.begin() as c:
            c.execute(sa.text(f"drop table if exists {table}"))
        engine.dispose()
    secrets.reset()


def seed(store: Store, w: dict) -> None:
    with store.begin() as conn:
        for k, v in w["variables"].items():
            sv.set_variable(conn, k, v)
        for c in w["connections"]:
            sv.set_connection(conn, c)


def check_outputs(w: dict) -> None:
    summary = json.loads((w["out"] / "summary.json").read_text())
    # A list of statements gives one result per statement, None for those without rows,
    # as Airflow's SQLExecuteQueryOperator returns them.
    assert summary["pg"] == [None, None, None, [[6]]] and summary["maria"] == [None, None, None, [[60]]]
    assert summary["api"]["rows"] == 42


def check_failure_notified(w: dict) -> None:
    assert [m["Subject"] for m in w["inbox"].messages] == ["connected.check failed"]
    (post,) = w["slack"].posts
    assert post[0] == "/T1/B1/secret-hook" and "connected.check failed in" in json.loads(post[2])["text"]


def run_cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MILLSTREAM_HOME": str(home), "MILLSTREAM_DAGS_FOLDER": str(home / "dags")}
    return subprocess.run(
        [sys.executable, "-m", "millstream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def local_home(tmp_path: Path, w: dict) -> Path:
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    shutil.copy(DAG_FILE, home / "dags" / "dag_connected.py")
    store = Store(f"sqlite:///{home / 'millstream.db'}")
    store.migrate()
    seed(store, w)
    store.dispose()
    return home


def test_green_and_notifying_under_dags_test(tmp_path, world):
    home = local_home(tmp_path, world)
    p = run_cli(home, "dags", "test", "connected")
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"^Run \S+: success$", p.stdout, re.M) and "\npg: success" in p.stdout
    check_outputs(world)
    assert not world["inbox"].messages and not world["slack"].posts
    p = run_cli(home, "dags", "test", "connected", "--conf", '{"fail": true}')
    assert re.search(r"^Run \S+: failed \(failed: ", p.stdout, re.M), p.stdout + p.stderr
    check_failure_notified(world), p.stdout
    assert "api-pass-123" not in p.stdout + p.stderr


def test_green_under_standalone(tmp_path, world):
    home = local_home(tmp_path, world)
    p = run_cli(home, "standalone", "--no-api", "--trigger", "connected", "--exit-after-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "of connected: success" in p.stdout, p.stdout
    check_outputs(world)
    run_id = next(line.split("run ")[1] for line in p.stdout.splitlines() if line.startswith("Triggered"))
    log = run_cli(home, "tasks", "logs", "connected", run_id, "where").stdout
    assert "pg=127.0.0.1 table=***" in log  # the variable's value is masked in the log


@pytest.mark.usefixtures("pg_url")
def test_green_and_notifying_on_celery_workers(tmp_path, world, pg_url):
    from .test_celery import CeleryCluster

    c = CeleryCluster(tmp_path, pg_url)
    shutil.copy(DAG_FILE, c.dags / "dag_connected.py")
    seed(c.store, world)
    try:
        c.start(workers=1)
        c.wait_workers(1)
        run_id = c.trigger("connected")
        assert c.wait_run("connected", run_id) == "success"
        check_outputs(world)
        failing = c.trigger("connected", conf={"fail": True})
        assert c.wait_run("connected", failing) == "failed"
        from .conftest import wait_for

        wait_for(lambda: world["inbox"].messages and world["slack"].posts, 30, "the failure notifications")
        check_failure_notified(world)
    finally:
        c.stop()
