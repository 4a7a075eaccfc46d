"""The scheduler's metrics: what happens in this process, as Prometheus series and StatsD lines.

Facts of the store (runs and task instances by state, pool slots, import errors, backfill
progress) are counted when ``/metrics`` is scraped (``api/metrics.py``), so they are right
however many schedulers share the store. What only this process sees is recorded here: an
attempt starting or ending, how long it waited queued and ran, a run's duration, the turn's
duration, the executor's slots, DAG files' parse times, asset events.

The phases call one method per event (one line each). Like the ready queue, what happens
inside a transaction is *staged* and only counted once that transaction committed
(:meth:`Metrics.publish`, from ``lifecycle.after_commit``): a rolled-back turn whose
reports are applied again next turn is not counted twice (:meth:`Metrics.discard`, from
``lifecycle.reload``). Staging is a list append; the counting itself happens once per
commit, which keeps the per-attempt cost of metrics to a few microseconds.

:class:`NoMetrics` is the switched-off twin: every method does nothing, nothing is
registered. Names follow Airflow's (``docs/metrics.md`` has the mapping).
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter as Tally
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from millstream.core.states import TERMINAL_TASK_STATES, RunState, TaskState
from millstream.worker.item import WorkItem

if TYPE_CHECKING:
    from millstream.scheduler.parsing import Parsed
    from millstream.settings import Settings

log = logging.getLogger("millstream.scheduler")

#: Seconds: from a trivial task (a few ms) to a long batch job (hours).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
#: Seconds: queued-to-running latency and the turn are short when all is well.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class NoMetrics:
    """Metrics switched off: every hook is a no-op and nothing is registered."""

    enabled = False
    registry: Any = None

    def dispatched(self, items: Iterable[WorkItem]) -> None:
        """Attempts handed to the executor (their queued-to-running latency starts now)."""

    def started(self, dag_id: str, item: WorkItem, at: datetime) -> None:
        """An attempt's worker started it (staged)."""

    def attempt_ended(self, dag_id: str, item: WorkItem, state: str, seconds: float) -> None:
        """An attempt's worker reported how it ended (staged)."""

    def states(self, dag_id: str, task_id: str, state: TaskState, count: int) -> None:
        """The planner set ``count`` instances of a task to ``state`` (staged)."""

    def run_finished(self, dag_id: str, state: RunState, start: datetime | None, end: datetime) -> None:
        """A run ended (staged)."""

    def asset_events(self, count: int) -> None:
        """Asset events this scheduler recorded (staged)."""

    def publish(self) -> None:
        """The transaction committed: count what was staged."""

    def discard(self) -> None:
        """The turn was rolled back and the state is rebuilt: forget what was staged."""

    def turn(self, seconds: float, polled: bool, executor: Any) -> None:
        """One scheduler turn took ``seconds`` of work (the wait on the executor excluded)."""

    def parsed(self, parsed: Iterable[Parsed]) -> None:
        """DAG files parsed by the folder watcher."""

    def close(self) -> None:
        """Flush and close the StatsD socket."""


class StatsdClient:
    """Plain StatsD over UDP: lines packed into datagrams, never blocking, never raising.

    A lost datagram is a lost sample, as with any StatsD client; metrics must never slow
    or stop the scheduler.
    """

    MAX_DATAGRAM = 1432  # fits an Ethernet MTU with IP and UDP headers

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.prefix = f"{prefix}." if prefix else ""
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self.addr = addr
        self.sock = socket.socket(family, kind, proto)
        self.sock.setblocking(False)

    def send(self, lines: list[str]) -> None:
        packet: list[str] = []
        size = 0
        for line in lines:
            full = self.prefix + line
            if packet and size + len(full) + 1 > self.MAX_DATAGRAM:
                self._send("\n".join(packet))
                packet, size = [], 0
            packet.append(full)
            size += len(full) + 1
        if packet:
            self._send("\n".join(packet))

    def _send(self, data: str) -> None:
        try:
            self.sock.sendto(data.encode(), self.addr)
        except OSError:
            pass  # nobody listening, or the buffer is full: StatsD is best effort

    def close(self) -> None:
        self.sock.close()


def _stat(name: str) -> str:
    """A dag_id, task_id or file name as one StatsD name segment."""
    return name.replace(":", "_").replace("|", "_").replace("@", "_").replace("\n", "_")


class Metrics(NoMetrics):
    """The scheduler's metrics, in a registry of their own (see the module docstring)."""

    enabled = True
    #: Seconds StatsD lines wait to be sent together (the scheduler turns many times a second).
    STATSD_FLUSH_INTERVAL = 0.5

    def __init__(self, *, prometheus: bool = True, statsd: StatsdClient | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        # No ``*_created`` series: they double what every scrape carries and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True) if prometheus else None
        self.statsd = statsd
        self._staged: list[tuple[Any, ...]] = []
        self._lines: list[str] = []  # StatsD lines not sent yet: a few datagrams a second, not one a turn
        self._flush_at = 0.0
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._queued_at: dict[tuple[int, str, int], float] = {}
        self._running: set[tuple[int, str, int]] = set()
        reg = self.registry
        ti = ("dag_id", "task_id")
        # With Prometheus off (StatsD only) the instruments live in a throwaway registry.
        reg_or_none = reg if reg is not None else CollectorRegistry()
        self.ti_successes = Counter(
            "airflow_ti_successes", "Attempts that succeeded.", ti, registry=reg_or_none
        )
        self.ti_failures = Counter("airflow_ti_failures", "Attempts that failed.", ti, registry=reg_or_none)
        self.ti_start = Counter("airflow_ti_start", "Attempts started by a worker.", ti, registry=reg_or_none)
        self.ti_finish = Counter(
            "airflow_ti_finish",
            "Task instances that reached a terminal state, by that state.",
            (*ti, "state"),
            registry=reg_or_none,
        )
        self.task_duration = Histogram(
            "airflow_task_duration",
            "Seconds an attempt ran (succeeded or failed).",
            ti,
            buckets=DURATION_BUCKETS,
            registry=reg_or_none,
        )
        self.queued_duration = Histogram(
            "airflow_task_queued_duration",
            "Seconds from handing an attempt to the executor to its worker starting it.",
            ti,
            buckets=LATENCY_BUCKETS,
            registry=reg_or_none,
        )
        self.run_success = Histogram(
            "airflow_dagrun_duration",
            "Seconds from start to end of runs that succeeded.",
            ("dag_id",),
            buckets=DURATION_BUCKETS,
            registry=reg_or_none,
        )
        self.run_failed = Histogram(
            "airflow_dagrun_failed",
            "Seconds from start to end of runs that failed.",
            ("dag_id",),
            buckets=DURATION_BUCKETS,
            registry=reg_or_none,
        )
        self.loop = Histogram(
            "airflow_scheduler_scheduler_loop_duration",
            "Seconds of work in one scheduler turn (the wait for the executor excluded).",
            buckets=LATENCY_BUCKETS,
            registry=reg_or_none,
        )
        self.heartbeat = Counter(
            "airflow_scheduler_heartbeat", "Scheduler polls of the store.", registry=reg_or_none
        )
        ex = ("executor",)
        self.open_slots = Gauge(
            "airflow_executor_open_slots", "Free executor slots.", ex, registry=reg_or_none
        )
        self.queued_tasks = Gauge(
            "airflow_executor_queued_tasks",
            "Attempts handed to the executor that no worker started yet.",
            ex,
            registry=reg_or_none,
        )
        self.running_tasks = Gauge(
            "airflow_executor_running_tasks", "Attempts a worker is running.", ex, registry=reg_or_none
        )
        self.parse_last = Gauge(
            "airflow_dag_processing_last_duration",
            "Seconds the last parse of a DAG file took.",
            ("dag_file",),
            registry=reg_or_none,
        )
        self.parse_total = Gauge(
            "airflow_dag_processing_total_parse_time",
            "Seconds the last round of parsing changed DAG files took.",
            registry=reg_or_none,
        )
        self.asset_updates = Counter(
            "airflow_asset_updates", "Asset events this scheduler recorded.", registry=reg_or_none
        )

    # -- staged during a transaction ---------------------------------------------------

    def dispatched(self, items: Iterable[WorkItem]) -> None:
        now = time.time()
        for item in items:
            self._queued_at[item.key] = now

    def started(self, dag_id: str, item: WorkItem, at: datetime) -> None:
        self._staged.append(("start", dag_id, item, at.timestamp()))

    def attempt_ended(self, dag_id: str, item: WorkItem, state: str, seconds: float) -> None:
        self._staged.append(("end", dag_id, item, state, seconds))

    def states(self, dag_id: str, task_id: str, state: TaskState, count: int) -> None:
        if state in TERMINAL_TASK_STATES and count:
            self._staged.append(("state", dag_id, task_id, state.value, count))

    def run_finished(self, dag_id: str, state: RunState, start: datetime | None, end: datetime) -> None:
        seconds = (end - start).total_seconds() if start is not None else 0.0
        self._staged.append(("run", dag_id, state.value, max(seconds, 0.0)))

    def asset_events(self, count: int) -> None:
        if count:
            self._staged.append(("assets", count))

    def discard(self) -> None:
        self._staged = []

    # -- counted after the commit --------------------------------------------------------

    def publish(self) -> None:
        if not self._staged:
            return
        staged, self._staged = self._staged, []
        lines: list[str] | None = self._lines if self.statsd is not None else None
        # Counters are summed per label set first: a wide map is one increment, not thousands.
        finish: Tally[tuple[str, str, str]] = Tally()
        starts: Tally[tuple[str, str]] = Tally()
        outcomes: Tally[tuple[str, str, bool]] = Tally()
        for entry in staged:
            kind = entry[0]
            if kind == "start":
                _, dag_id, item, at = entry
                starts[(dag_id, item.task_id)] += 1
                self._running.add(item.key)
                queued = self._queued_at.pop(item.key, None)
                if queued is not None:
                    wait = max(at - queued, 0.0)
                    self._child(self.queued_duration, dag_id, item.task_id).observe(wait)
                    if lines is not None:
                        lines.append(
                            f"dag.{_stat(dag_id)}.{_stat(item.task_id)}.queued_duration:{wait * 1000:.3f}|ms"
                        )
            elif kind == "end":
                _, dag_id, item, state, seconds = entry
                self._queued_at.pop(item.key, None)
                self._running.discard(item.key)
                if state in ("success", "failed"):
                    outcomes[(dag_id, item.task_id, state == "success")] += 1
                    self._child(self.task_duration, dag_id, item.task_id).observe(seconds)
                    if lines is not None:
                        lines.append(
                            f"dag.{_stat(dag_id)}.{_stat(item.task_id)}.duration:{seconds * 1000:.3f}|ms"
                        )
            elif kind == "state":
                _, dag_id, task_id, state, count = entry
                finish[(dag_id, task_id, state)] += count
            elif kind == "run":
                _, dag_id, state, seconds = entry
                (self.run_success if state == "success" else self.run_failed).labels(dag_id).observe(seconds)
                if lines is not None:
                    lines.append(f"dagrun.duration.{state}.{_stat(dag_id)}:{seconds * 1000:.3f}|ms")
            elif kind == "assets":
                self.asset_updates.inc(entry[1])
                if lines is not None:
                    lines.append(f"asset.updates:{entry[1]}|c")
        for (dag_id, task_id), n in starts.items():
            self.ti_start.labels(dag_id, task_id).inc(n)
            if lines is not None:
                lines.append(f"ti.start.{_stat(dag_id)}.{_stat(task_id)}:{n}|c")
        for (dag_id, task_id, ok), n in outcomes.items():
            (self.ti_successes if ok else self.ti_failures).labels(dag_id, task_id).inc(n)
            if lines is not None:
                lines.append(f"{'ti_successes' if ok else 'ti_failures'}:{n}|c")
        for (dag_id, task_id, state), n in finish.items():
            self.ti_finish.labels(dag_id, task_id, state).inc(n)
            if lines is not None:
                lines.append(f"ti.finish.{_stat(dag_id)}.{_stat(task_id)}.{state}:{n}|c")

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: the per-attempt histograms skip the
        label validation and lock of ``labels()`` after the first attempt of a task."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- per turn, and from the DAG folder -------------------------------------------------

    def turn(self, seconds: float, polled: bool, executor: Any) -> None:
        self.loop.observe(seconds)
        name = type(executor).__name__
        in_flight = executor.in_flight()
        running = min(len(self._running), in_flight)
        open_slots = max(executor.slots - in_flight, 0)
        self.open_slots.labels(name).set(open_slots)
        self.queued_tasks.labels(name).set(in_flight - running)
        self.running_tasks.labels(name).set(running)
        if not in_flight and (self._running or self._queued_at):
            # Attempts the executor gave up without a report (a cancel): nothing is in flight.
            self._running.clear()
            self._queued_at.clear()
        if polled:
            self.heartbeat.inc()
        if self.statsd is not None:
            lines = self._lines
            lines.append(f"scheduler.scheduler_loop_duration:{seconds * 1000:.3f}|ms")
            if polled:
                lines += [
                    "scheduler_heartbeat:1|c",
                    f"executor.open_slots:{open_slots}|g",
                    f"executor.queued_tasks:{in_flight - running}|g",
                    f"executor.running_tasks:{running}|g",
                ]
            mono = time.monotonic()
            if mono >= self._flush_at or len(lines) >= 1000:
                self._flush_at = mono + self.STATSD_FLUSH_INTERVAL
                self._flush()

    def parsed(self, parsed: Iterable[Parsed]) -> None:
        total = 0.0
        lines: list[str] = []
        for p in parsed:
            if p.duration is None:
                continue
            total += p.duration
            self.parse_last.labels(p.filename).set(p.duration)
            lines.append(f"dag_processing.last_duration.{_stat(p.filename)}:{p.duration * 1000:.3f}|ms")
        if not lines:
            return
        self.parse_total.set(total)
        if self.statsd is not None:
            self._lines += [*lines, f"dag_processing.total_parse_time:{total:.3f}|g"]

    def _flush(self) -> None:
        if self.statsd is not None and self._lines:
            lines, self._lines = self._lines, []
            self.statsd.send(lines)

    def close(self) -> None:
        self._flush()
        if self.statsd is not None:
            self.statsd.close()


def from_settings(settings: Settings) -> NoMetrics:
    """The metrics a scheduler process records under ``[metrics]``: nothing when both the
    Prometheus side and StatsD are off."""
    if not settings.metrics_enabled and not settings.statsd_on:
        return NoMetrics()
    statsd = None
    if settings.statsd_on:
        try:
            statsd = StatsdClient(settings.statsd_host, settings.statsd_port, settings.statsd_prefix)
        except OSError as e:
            log.warning(
                "StatsD at %s:%s unusable (%s); check [metrics] statsd_host",
                settings.statsd_host,
                settings.statsd_port,
                e,
            )
    return Metrics(prometheus=settings.metrics_enabled, statsd=statsd)
