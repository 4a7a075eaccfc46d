"""Prometheus metrics and StatsD from a real scheduler, scraped through the real API app.

The acceptance test of issue 19: ``/metrics`` scraped with prometheus_client's own text
parser during and after a run of 1 000 mapped instances; the counters add up to what the
store holds. StatsD goes to a UDP socket the test listens on (a real server, if a small one).
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from millstream.api import create_app
from millstream.executors.local import LocalExecutor
from millstream.scheduler import metrics as scheduler_metrics
from millstream.scheduler.loop import Scheduler
from millstream.scheduler.parsing import DagFolder
from millstream.settings import Settings
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.store import users as users_q
from tests.integration.conftest import Harness, wait_for

WIDE = """
from millstream import dag, task

@dag(schedule=None)
def wide():
    @task
    def items():
        return list(range(1000))

    @task
    def square(x):
        return x * x

    @task
    def total(values):
        return sum(values)

    @task
    def boom():
        raise ValueError("no")

    total(square.expand(x=items()))
    boom()

wide()
"""

SMALL = """
from millstream import dag, task

@dag(schedule=None)
def small():
    @task
    def a():
        return 1

    @task
    def b(x):
        return x + 1

    b(a())

small()
"""


def start(h: Harness, metrics: scheduler_metrics.NoMetrics) -> Scheduler:
    """The harness's scheduler, with metrics (the harness builds one without)."""
    h.scheduler = Scheduler(
        h.store,
        LocalExecutor(h.url, 2),
        logs_folder=str(h.home / "logs"),
        dag_folder=DagFolder(h.dags, 5.0),
        poll_interval=0.1,
        dag_refresh_interval=0.5,
        paused_on_creation=False,
        metrics=metrics,
    )
    h.thread = threading.Thread(target=h.scheduler.run_forever, daemon=True)
    h.thread.start()
    return h.scheduler


def scrape(client: TestClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of ``/metrics`` by sample name, as Prometheus's parser reads them."""
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


def store_counts(h: Harness, dag_id: str, run_id: str) -> tuple[Counter, str]:
    with h.store.read() as conn:
        run = runs_q.get_run(conn, dag_id, run_id)
        states = Counter(r["state"] for r in ti_q.list_for_run(conn, run["id"]))
    return states, run["state"]


@pytest.mark.slow
def test_counters_add_up_to_the_store_during_and_after_1000_instances(harness: Harness) -> None:
    h = harness
    h.write_dag("wide.py", WIDE)
    metrics = scheduler_metrics.Metrics()
    start(h, metrics)
    settings = Settings.load(environ={"MILLSTREAM_HOME": str(h.home)})
    client = TestClient(create_app(settings, h.store, ui=False, metrics=metrics.registry))
    run_id = h.trigger("wide")

    # During: each gauge is one consistent read of the store, so it lies between what the
    # store held just before and just after the scrape; counters never run ahead of it.
    seen_running = 0
    while True:
        before, run_state = store_counts(h, "wide", run_id)
        s = scrape(client)
        after, _ = store_counts(h, "wide", run_id)
        if run_state in ("success", "failed"):
            break
        if total(s, "millstream_dag_runs", dag_id="wide", state="running") == 1:
            seen_running += 1
        gauge = total(s, "millstream_task_instances", dag_id="wide", state="success")
        assert before["success"] <= gauge <= after["success"]
        assert total(s, "airflow_ti_successes_total", dag_id="wide") <= after["success"]
        assert total(s, "airflow_ti_finish_total", dag_id="wide", state="success") <= after["success"]
    assert seen_running >= 1, "no scrape happened while the run was running"

    # After: the counters equal the store's counts (the last commit is counted right after it).
    assert h.wait_run("wide", run_id) == "failed"
    final, _ = store_counts(h, "wide", run_id)
    assert final == {"success": 1002, "failed": 1}

    def settled() -> dict:
        s = scrape(client)
        return s if total(s, "airflow_dagrun_failed_count", dag_id="wide") == 1 else {}

    s = wait_for(settled, 10, "the run's end counted")
    for state in ("success", "failed", "skipped", "upstream_failed"):
        assert total(s, "airflow_ti_finish_total", dag_id="wide", state=state) == final[state], state
        assert total(s, "millstream_task_instances", dag_id="wide", state=state) == final[state], state
    assert total(s, "airflow_ti_successes_total", dag_id="wide") == 1002
    assert total(s, "airflow_ti_successes_total", dag_id="wide", task_id="square") == 1000
    assert total(s, "airflow_ti_failures_total", dag_id="wide", task_id="boom") == 1
    assert total(s, "airflow_ti_start_total", dag_id="wide") == 1003
    assert total(s, "airflow_task_duration_count", dag_id="wide") == 1003
    assert total(s, "airflow_task_queued_duration_count", dag_id="wide") == 1003
    assert total(s, "millstream_dag_runs", dag_id="wide", state="failed") == 1
    assert total(s, "airflow_dagrun_duration_count", dag_id="wide") == 0
    assert total(s, "airflow_scheduler_scheduler_loop_duration_count") > 0
    assert total(s, "airflow_scheduler_heartbeat_total") > 0
    assert total(s, "millstream_store_up") == 1
    assert total(s, "airflow_pool_open_slots", pool="default_pool") == 128
    assert total(s, "airflow_dag_processing_import_errors") == 0
    assert total(s, "airflow_dag_processing_last_duration", dag_file=str(h.dags / "wide.py")) > 0
    assert total(s, "airflow_executor_open_slots", executor="LocalExecutor") > 0


class StatsdServer:
    """A StatsD server as far as the test needs one: a UDP socket and the lines it got."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            with self.lock:
                self.lines.extend(data.decode().splitlines())

    def count(self, name: str) -> float:
        """The sum of a counter's values (``name:3|c``)."""
        with self.lock:
            return sum(float(ln.split(":")[1].split("|")[0]) for ln in self.lines if ln.split(":")[0] == name)

    def names(self) -> set[str]:
        with self.lock:
            return {ln.split(":")[0] for ln in self.lines}

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_statsd_gets_airflow_names_over_udp(harness: Harness) -> None:
    server = StatsdServer()
    try:
        h = harness
        h.write_dag("small.py", SMALL)
        settings = Settings.load(
            environ={
                "MILLSTREAM_HOME": str(h.home),
                "MILLSTREAM__METRICS__METRICS_ENABLED": "false",  # StatsD alone
                "MILLSTREAM__METRICS__STATSD_ON": "true",
                "MILLSTREAM__METRICS__STATSD_HOST": "127.0.0.1",
                "MILLSTREAM__METRICS__STATSD_PORT": str(server.port),
            }
        )
        metrics = scheduler_metrics.from_settings(settings)
        assert metrics.enabled and metrics.registry is None
        start(h, metrics)
        run_id = h.trigger("small")
        assert h.wait_run("small", run_id) == "success"
        wait_for(lambda: server.count("airflow.ti_successes") == 2, 10, "two successes over StatsD")
        wait_for(lambda: "airflow.dagrun.duration.success.small" in server.names(), 10, "the run's duration")
        names = server.names()
        assert {"airflow.dag.small.a.duration", "airflow.dag.small.b.duration"} <= names
        assert "airflow.dag.small.a.queued_duration" in names
        assert "airflow.scheduler.scheduler_loop_duration" in names
        assert server.count("airflow.ti.finish.small.b.success") == 1
        assert server.count("airflow.ti.start.small.a") == 1
        assert "airflow.executor.open_slots" in names
        assert any(n.startswith("airflow.dag_processing.last_duration.") for n in names)
        # No Prometheus side: the API serves no /metrics.
        assert TestClient(create_app(settings, h.store, ui=False)).get("/metrics").status_code == 404
    finally:
        server.close()


def test_switched_off_nothing_is_registered_or_served(tmp_path: Path) -> None:
    settings = Settings.load(
        environ={"MILLSTREAM_HOME": str(tmp_path), "MILLSTREAM__METRICS__METRICS_ENABLED": "false"}
    )
    metrics = scheduler_metrics.from_settings(settings)
    assert type(metrics) is scheduler_metrics.NoMetrics and metrics.registry is None
    app = create_app(settings, ui=False)
    assert "/metrics" not in {getattr(r, "path", None) for r in app.routes}
    assert TestClient(app).get("/metrics").status_code == 404


def test_metrics_can_require_credentials(tmp_path: Path) -> None:
    settings = Settings.load(
        environ={"MILLSTREAM_HOME": str(tmp_path), "MILLSTREAM__METRICS__METRICS_REQUIRE_AUTH": "true"}
    )
    app = create_app(settings, ui=False)
    store = app.state.store
    with store.begin() as conn:
        users_q.create_user(conn, "scraper", "password-1", "viewer")
        token = users_q.create_token(conn, "scraper", "prometheus")
    assert TestClient(app).get("/metrics").status_code == 401
    ok = TestClient(app, headers={"Authorization": f"Bearer {token}"}).get("/metrics")
    assert ok.status_code == 200 and "millstream_store_up 1.0" in ok.text
    store.dispose()


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name /metrics can carry: the scheduler's families and the store's."""

    from millstream.api.metrics import StoreCollector
    from millstream.store import Store

    settings = Settings.load(
        environ={"MILLSTREAM_HOME": str(tmp_path), "MILLSTREAM__SCHEDULER__EXECUTOR": "local"}
    )
    store = Store(f"sqlite:///{tmp_path / 'names.db'}")
    store.migrate()
    try:
        families = list(scheduler_metrics.Metrics().registry.collect())
        families += list(StoreCollector(store, settings).collect())
    finally:
        store.dispose()
    names = {f.name for f in families} | {"millstream_celery_queue_length"}  # needs a Celery broker
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return names | {f.name + s for f in families for s in suffixes.get(f.type, ())}


def test_dashboard_and_docs_name_only_exported_series(tmp_path: Path) -> None:
    import json
    import re

    docs = Path(__file__).resolve().parents[2] / "docs"
    exported = exported_names(tmp_path)
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [dashboard["templating"]["list"][1]["definition"]]
    used = {m for e in exprs for m in re.findall(r"\b(?:airflow|millstream)_[a-z_]+", e)}
    assert used and used <= exported, used - exported
    documented = set(re.findall(r"`((?:airflow|millstream)_[a-z_]+)`", (docs / "metrics.md").read_text()))
    assert documented - {"airflow_ti_successes"} <= exported, (
        documented - exported
    )  # that one: statsd_exporter's
    assert {n for n in exported if not n.endswith(("_bucket", "_sum", "_count"))} <= documented | {
        f for f in exported if f + "_total" in exported
    }
