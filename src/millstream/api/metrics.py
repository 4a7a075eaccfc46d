"""``GET /metrics``: Prometheus text, with gauges read from the store when scraped.

The store's facts come from :class:`StoreCollector`, one read per scrape
(``store/metrics.py``): they are right whichever scheduler did the work and however many
there are. In ``millstream standalone`` the scheduler runs in this same process, and its
event metrics (``scheduler/metrics.py``: attempts, durations, latencies, turns, executor
slots) are served beside them. ``docs/metrics.md`` lists every series with the Airflow
name it stands for.

Open to scrapers without credentials unless ``[metrics] metrics_require_auth`` is set,
as Prometheus expects of a ``/metrics`` endpoint (Airflow exposes none of its own: its
metrics go through StatsD or OpenTelemetry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from millstream.api.auth import User
from millstream.settings import Settings
from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import metrics as metrics_q

log = logging.getLogger("millstream.api")


class StoreCollector(Collector):
    """Gauges of the store, computed at scrape time (see the module docstring)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._queues_of_version: dict[int, frozenset[str]] = {}  # a version's spec never changes
        self._broker_warned = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("millstream_store_up", "1 if the last scrape could read the store.")
        try:
            with self.store.read() as conn:
                snap = metrics_q.snapshot(conn)
                queues = self._celery_queues(conn) if self.settings.executor == "celery" else []
        except Exception:
            log.warning("/metrics could not read the store", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._runs_and_instances(snap)
        yield from self._pools(snap)
        yield from self._parsing_backfills_assets(snap)
        if queues:
            yield from self._celery(queues)

    def _runs_and_instances(self, snap: metrics_q.Snapshot) -> Iterator[GaugeMetricFamily]:
        runs = GaugeMetricFamily(
            "millstream_dag_runs", "DAG runs in the store, by DAG and state.", labels=["dag_id", "state"]
        )
        for (dag_id, state), n in sorted(snap.runs.items()):
            runs.add_metric([dag_id, state], n)
        yield runs
        running = GaugeMetricFamily("airflow_scheduler_dagruns_running", "DAG runs in state running.")
        running.add_metric([], sum(n for (_, state), n in snap.runs.items() if state == "running"))
        yield running
        tis = GaugeMetricFamily(
            "millstream_task_instances",
            "Task instances in the store, by DAG and state.",
            labels=["dag_id", "state"],
        )
        for (dag_id, state), n in sorted(snap.task_instances.items()):
            tis.add_metric([dag_id, state], n)
        yield tis

    def _pools(self, snap: metrics_q.Snapshot) -> Iterator[GaugeMetricFamily]:
        total = GaugeMetricFamily("millstream_pool_slots", "Slots of each pool.", labels=["pool"])
        open_ = GaugeMetricFamily(
            "airflow_pool_open_slots",
            "Slots of the pool no queued or running instance holds.",
            labels=["pool"],
        )
        used = GaugeMetricFamily(
            "airflow_pool_used_slots", "Instances queued or running in the pool.", labels=["pool"]
        )
        per_state = {
            kind: GaugeMetricFamily(
                f"airflow_pool_{kind}_slots", f"Instances of the pool in state {state}.", labels=["pool"]
            )
            for state, kind in metrics_q.POOL_STATES.items()
        }
        for name, slots in sorted(snap.pools.items()):
            taken = sum(snap.pool_states.get((name, s), 0) for s in metrics_q.SLOT_TAKING)
            total.add_metric([name], slots)
            open_.add_metric([name], max(slots - taken, 0))
            used.add_metric([name], taken)
            for state, kind in metrics_q.POOL_STATES.items():
                per_state[kind].add_metric([name], snap.pool_states.get((name, state), 0))
        yield total
        yield open_
        yield used
        yield from per_state.values()

    def _parsing_backfills_assets(self, snap: metrics_q.Snapshot) -> Iterator[GaugeMetricFamily]:
        errors = GaugeMetricFamily("airflow_dag_processing_import_errors", "DAG files that fail to import.")
        errors.add_metric([], snap.import_errors)
        yield errors
        size = GaugeMetricFamily("airflow_dagbag_size", "Active DAGs.")
        size.add_metric([], snap.dags)
        yield size
        backfills = GaugeMetricFamily(
            "millstream_backfill_runs",
            "Runs of running or paused backfills, by run state (queued: waiting for their turn).",
            labels=["backfill_id", "dag_id", "state"],
        )
        for (backfill_id, dag_id, state), n in sorted(snap.backfills.items()):
            backfills.add_metric([str(backfill_id), dag_id, state], n)
        yield backfills
        events = GaugeMetricFamily(
            "millstream_asset_events", "Asset events in the store, by source.", labels=["source"]
        )
        for source, n in sorted(snap.asset_events.items()):
            events.add_metric([source], n)
        yield events

    def _celery_queues(self, conn: Any) -> list[str]:
        """The default queue and every queue a task of an active DAG names."""
        queues = {self.settings.default_queue}
        for _dag_id, version_id in metrics_q.active_versions(conn):
            if version_id not in self._queues_of_version:
                spec = dags_q.spec_for_version(conn, version_id)
                self._queues_of_version[version_id] = frozenset(t.queue for t in spec.tasks if t.queue)
            queues |= self._queues_of_version[version_id]
        return sorted(queues)

    def _celery(self, queues: list[str]) -> Iterator[GaugeMetricFamily]:
        from millstream.executors.celery import queue_lengths

        try:
            lengths = queue_lengths(self.settings.broker_url, queues)
        except Exception as e:  # noqa: BLE001 - a broker down must not fail the whole scrape
            if time.monotonic() - self._broker_warned > 300:  # once per 5 minutes, not per scrape
                self._broker_warned = time.monotonic()
                log.warning("/metrics could not read the Celery queues' depth: %s", e)
            return
        depth = GaugeMetricFamily(
            "millstream_celery_queue_length", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        for name, n in lengths.items():
            depth.add_metric([name], n)
        yield depth


def install(app: FastAPI, settings: Settings, store: Store, process: CollectorRegistry | None = None) -> None:
    """Serve ``/metrics`` (nothing is registered when ``[metrics] metrics_enabled`` is off).
    ``process``: the registry of a scheduler running in this process (standalone)."""
    if not settings.metrics_enabled:
        return
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, settings))
    registries = [registry] if process is None else [registry, process]

    def scrape() -> Response:
        return Response(b"".join(generate_latest(r) for r in registries), media_type=CONTENT_TYPE_LATEST)

    if settings.metrics_require_auth:

        @app.get("/metrics", include_in_schema=False)
        def metrics_authenticated(who: User) -> Response:
            return scrape()

    else:

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return scrape()
