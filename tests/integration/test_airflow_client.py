"""Airflow's own Python client, ``apache-airflow-client==3.3.2``, drives a real Millstream
server over HTTP: the proof that ``/api/v2`` is Airflow's API to the clients people use.

:func:`scenario` is a plain function of a host, a login and DAG ids, written against Airflow
and run unchanged against Millstream. The DAG files in :data:`DAG_FILES` import from
``airflow.sdk``; Millstream loads them through its Airflow import hook (``--airflow-imports``).

Run against Airflow 3.3.2 itself, outside the repo, on 2026-12-07: passed. How::

    # /tmp/afvenv: apache-airflow==3.3.2; SQLite, LocalExecutor, the simple auth manager
    mkdir -p /tmp/afhome_client/dags
    echo '{"tester": "tester-pass"}' > /tmp/afhome_client/passwords.json
    .venv/bin/python tests/integration/test_airflow_client.py write-dags /tmp/afhome_client/dags
    export AIRFLOW_HOME=/tmp/afhome_client AIRFLOW__CORE__DAGS_FOLDER=/tmp/afhome_client/dags
    export AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=tester:admin
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=/tmp/afhome_client/passwords.json
    export AIRFLOW__API__PORT=28793
    export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:28793/execution/
    PATH=/tmp/afvenv/bin:$PATH airflow standalone &        # on a fresh airflow.db
    .venv/bin/python tests/integration/test_airflow_client.py run http://127.0.0.1:28793 tester tester-pass

It printed ``scenario passed`` (last run 13:00 UTC, after the XCom, pool, import-error and
version reads were added). Seen there, and asserted here: the connection's password comes
back as ``***``; a second cancel of a backfill is a 409; the log is structured
(``{"event": "greeting=hello", ...}`` among the lines). Airflow's own bug, worked around:
``GET /assets/events`` answers 500 while a run that an event created has not started yet
(``created_dagruns[].start_date`` null), so the events are read after the consumer's run ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests

T = TypeVar("T")

DAG_FILES = {
    "client_dags.py": '''\
"""DAGs for the airflow-client scenario: the same file runs on Airflow 3.3.2 and Millstream."""

from datetime import datetime, timezone

from airflow.sdk import Asset, dag, task

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
ORDERS = Asset("client_orders")


@dag(schedule=None, start_date=START, catchup=False, tags=["client"])
def client_conf():
    @task
    def greet(**context):
        greeting = context["dag_run"].conf["greeting"]
        print(f"greeting={greeting}")
        return greeting

    @task
    def shout(greeting):
        print(greeting.upper())

    shout(greet())


@dag(schedule="@daily", start_date=START, catchup=False, tags=["client"])
def client_backfill():
    @task
    def day():
        print("one day")

    day()


@dag(schedule=[ORDERS], start_date=START, catchup=False, tags=["client"])
def client_consumer():
    @task
    def consume():
        print("consumed")

    consume()


client_conf()
client_backfill()
client_consumer()
''',
}
DAGS = {"conf": "client_conf", "backfill": "client_backfill", "consumer": "client_consumer"}
ASSET = "client_orders"


def until(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    """``probe()``'s first truthy answer; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def login(host: str, username: str, password: str) -> str:
    """A JWT as Airflow's simple auth manager hands it out."""
    r = requests.post(f"{host}/auth/token", json={"username": username, "password": password}, timeout=30)
    assert r.status_code == 201, (r.status_code, r.text)
    return str(r.json()["access_token"])


def scenario(host: str, username: str, password: str, dags: dict[str, str]) -> dict[str, Any]:
    """Everyday use of Airflow's REST API through its own client; ``dags`` maps the roles
    ``conf``, ``backfill``, ``consumer`` to DAG ids (files as :data:`DAG_FILES`)."""
    import airflow_client.client as ac
    from airflow_client.client.exceptions import ApiException

    config = ac.Configuration(host=host, access_token=login(host, username, password))
    seen: dict[str, Any] = {}
    with ac.ApiClient(config) as api:
        dag_api, run_api, ti_api = ac.DAGApi(api), ac.DagRunApi(api), ac.TaskInstanceApi(api)

        # The DAG files are parsed: all three listed.
        def listed() -> list[str] | None:
            got = dag_api.get_dags(limit=100, tags=["client"])
            ids = sorted(d.dag_id for d in got.dags)
            return ids if set(dags.values()) <= set(ids) else None

        seen["dags"] = until("the DAGs listed", listed, 180)
        for dag_id in (dags["conf"], dags["consumer"]):
            assert dag_api.patch_dag(dag_id, ac.DAGPatchBody(is_paused=False)).is_paused is False
        assert dag_api.get_dag(dags["conf"]).is_paused is False

        # Trigger with conf; poll the run to success.
        run = run_api.trigger_dag_run(
            dags["conf"],
            ac.TriggerDAGRunPostBody(
                dag_run_id="client_run_1", conf={"greeting": "hello"}, logical_date=None
            ),
        )
        assert run.dag_run_id == "client_run_1" and run.conf == {"greeting": "hello"}, run
        done = until(
            "the run to finish",
            lambda: (
                (r := run_api.get_dag_run(dags["conf"], "client_run_1")).state.value in ("success", "failed")
                and r
            ),
        )
        assert done.state.value == "success", done
        seen["run_state"] = done.state.value

        # Its task instances and the first task's log.
        tis = ti_api.get_task_instances(dags["conf"], "client_run_1")
        assert tis.total_entries == 2, tis
        assert sorted((t.task_id, t.state.value) for t in tis.task_instances) == [
            ("greet", "success"),
            ("shout", "success"),
        ]
        greet = ti_api.get_task_instance(dags["conf"], "client_run_1", "greet")
        log = ti_api.get_log(dags["conf"], "client_run_1", "greet", greet.try_number, full_content=True)
        text = str(log.content.actual_instance)
        assert "greeting=hello" in text, text[:2000]
        seen["log_chars"] = len(text)
        xcom = ac.XComApi(api).get_xcom_entry(dags["conf"], "greet", "client_run_1", "return_value")
        assert xcom.actual_instance.value == "hello", xcom

        # Odds and ends a client reads: details, pools, import errors, the version.
        details = dag_api.get_dag_details(dags["conf"])
        assert details.dag_id == dags["conf"] and details.is_paused is False, details
        pools = ac.PoolApi(api).get_pools(limit=100)
        assert "default_pool" in [p.name for p in pools.pools], pools
        assert ac.ImportErrorApi(api).get_import_errors().total_entries == 0
        seen["version"] = ac.VersionApi(api).get_version().version

        # A Variable and a Connection, set and read back.
        var_api, conn_api = ac.VariableApi(api), ac.ConnectionApi(api)
        var_api.post_variable(ac.VariableBody(key="client_var", value="v1", description="from the client"))
        assert var_api.get_variable("client_var").value == "v1"
        var_api.patch_variable("client_var", ac.VariableBody(key="client_var", value="v2"))
        assert var_api.get_variable("client_var").value == "v2"
        conn_api.post_connection(
            ac.ConnectionBody(
                connection_id="client_conn",
                conn_type="http",
                host="example.test",
                port=8443,
                login="svc",
                password="s3cret",
            )
        )
        conn = conn_api.get_connection("client_conn")
        assert (conn.conn_type, conn.host, conn.port, conn.login) == ("http", "example.test", 8443, "svc")
        assert conn.password == "***"  # Airflow redacts it
        seen["connections"] = [c.connection_id for c in conn_api.get_connections(limit=100).connections]
        assert "client_conn" in seen["connections"]

        # A backfill, created and cancelled.
        bf_api = ac.BackfillApi(api)
        bf = bf_api.create_backfill(
            ac.BackfillPostBody(
                dag_id=dags["backfill"],
                from_date=datetime(2025, 1, 1, tzinfo=UTC),
                to_date=datetime(2025, 1, 10, tzinfo=UTC),
                max_active_runs=1,
            )
        )
        assert bf.dag_id == dags["backfill"] and bf.completed_at is None, bf
        cancelled = bf_api.cancel_backfill(bf.id)
        assert cancelled.completed_at is not None and cancelled.is_paused, cancelled
        assert bf_api.get_backfill(bf.id).completed_at is not None
        try:
            bf_api.cancel_backfill(bf.id)
        except ApiException as e:
            assert e.status == 409, e
        else:
            raise AssertionError("a second cancel was accepted")
        seen["backfill"] = bf.id

        # An asset event starts the consumer's run.
        asset_api = ac.AssetApi(api)
        asset = until(
            "the asset",
            lambda: next(
                (a for a in asset_api.get_assets(name_pattern=ASSET).assets if a.name == ASSET), None
            ),
        )
        event = asset_api.create_asset_event(ac.CreateAssetEventsBody(asset_id=asset.id, extra={"n": 1}))
        assert event.asset_id == asset.id, event
        started = until(
            "the consumer's run",
            lambda: [
                r
                for r in run_api.get_dag_runs(dags["consumer"], limit=100).dag_runs
                if r.run_type.value == "asset_triggered"
            ],
        )
        consumer_run = started[0].dag_run_id
        finished = until(
            "the consumer's run to finish",
            lambda: (
                (r := run_api.get_dag_run(dags["consumer"], consumer_run)).state.value
                in ("success", "failed")
                and r
            ),
        )
        assert finished.state.value == "success", finished
        seen["consumer_run"] = consumer_run
        # Read only now: Airflow 3.3.2 answers 500 while a run the event created has not started.
        events = asset_api.get_asset_events(asset_id=asset.id)
        assert events.total_entries >= 1
        assert consumer_run in [r.run_id for r in events.asset_events[0].created_dagruns], events
    return seen


# ----------------------------------------------------------------- Millstream side


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``millstream standalone --airflow-imports`` on a fresh home, and an admin user."""

    def __init__(self, tmp: Path) -> None:
        self.home, self.dags = tmp / "home", tmp / "dags"
        self.dags.mkdir(parents=True)
        for name, src in DAG_FILES.items():
            (self.dags / name).write_text(src)
        self.port = _free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "MILLSTREAM_HOME": str(self.home),
            "MILLSTREAM_DAGS_FOLDER": str(self.dags),
            "MILLSTREAM__SCHEDULER__POLL_INTERVAL": "0.2",
        }
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, **env: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "millstream.cli", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    def start(self) -> None:
        self.cli("db", "migrate")
        self.cli("users", "create", "tester", "--role", "admin", MILLSTREAM_PASSWORD="tester-pass")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "millstream.cli", "standalone", "--airflow-imports"]
                + ["--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-4000:]
            try:
                return requests.get(f"{self.host}/api/v2/monitor/health", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or busy starting
                return False

        until("the API server", up, 60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_airflow_client_scenario_against_millstream(tmp_path: Path) -> None:
    for server in _server(tmp_path):
        try:
            seen = scenario(server.host, "tester", "tester-pass", DAGS)
        except BaseException:
            print(server.log.read_text()[-6000:])
            raise
        assert seen["dags"] == sorted(DAGS.values())
        assert seen["run_state"] == "success"


def main(argv: list[str]) -> None:
    """``write-dags DIR`` or ``run HOST USER PASSWORD``: the scenario outside pytest (for Airflow)."""
    if argv[:1] == ["write-dags"]:
        folder = Path(argv[1])
        folder.mkdir(parents=True, exist_ok=True)
        for name, src in DAG_FILES.items():
            (folder / name).write_text(src)
    elif argv[:1] == ["run"]:
        print(scenario(argv[1], argv[2], argv[3], DAGS))
        print("scenario passed")
    else:
        raise SystemExit(main.__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
