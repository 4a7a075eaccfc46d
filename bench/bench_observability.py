"""Observability cost (issue 19): metrics (and later traces) on vs off, in one run.

`millstream standalone` (local executor, SQLite file) runs the reference DAG at N = 10 000,
trigger to success, with every observability setting off and then on, alternating
each (three rounds); the medians are compared: on this shared 2-core machine single runs
of the same thing differ by more than 30 %, and the median of each side is the least
disturbed by what else runs.
"On" means what `observability_env(True)` sets: Prometheus metrics with a scraper fetching
`/metrics` every second (Prometheus's default is every 15 s, so this is the pessimistic
case), StatsD to a UDP socket this benchmark reads, and OpenTelemetry traces over OTLP/HTTP
to a collector this benchmark runs (it keeps the request bodies; `bench_traces.py` measures
traces alone and checks every span arrives). Target: on costs <= 5 % more.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import statistics
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench_traces import Collector
from common import SchedulerProcess, report, seed_source


def observability_env(on: bool, statsd_port: int = 0, otlp_endpoint: str = "") -> dict[str, str]:
    """Every observability setting, all on or all off (one place, so that traces join in)."""
    if not on:
        return {
            "MILLSTREAM__METRICS__METRICS_ENABLED": "false",
            "MILLSTREAM__METRICS__STATSD_ON": "false",
            "MILLSTREAM__TRACES__OTEL_ON": "false",
        }
    return {
        "MILLSTREAM__METRICS__METRICS_ENABLED": "true",
        "MILLSTREAM__METRICS__STATSD_ON": "true",
        "MILLSTREAM__METRICS__STATSD_HOST": "127.0.0.1",
        "MILLSTREAM__METRICS__STATSD_PORT": str(statsd_port),
        "MILLSTREAM__TRACES__OTEL_ON": "true",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp_endpoint,
    }


class _Sink:
    """A StatsD server that reads and counts datagrams (so none are refused)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                self.sock.recv(65535)
                self.datagrams += 1
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


class _Scraper:
    """Fetches `/metrics` every `interval` seconds, as Prometheus would."""

    def __init__(self, port: int, interval: float = 1.0) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval = interval
        self.scrapes = 0
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    r.read()
                self.scrapes += 1
            except Exception:
                self.failures += 1  # the API may not be up yet

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


def _cpu(pid: int) -> float:
    """User+system CPU seconds of one process (the standalone one: scheduler and API)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one(n: int, on: bool) -> tuple[float, float, int, int]:
    sink = _Sink() if on else None
    collector = Collector() if on else None
    env = observability_env(on, sink.port if sink else 0, collector.endpoint if collector else "")
    sp = SchedulerProcess({"seed.py": seed_source(n)}, env)
    scraper = None
    try:
        sp.start()
        sp.wait_parsed("process_daily_files")
        scraper = _Scraper(sp.port) if on else None
        assert sp.proc is not None
        t0, c0 = time.perf_counter(), _cpu(sp.proc.pid)
        run_id = sp.trigger("process_daily_files")
        row = sp.wait_run("process_daily_files", run_id)
        wall, cpu = time.perf_counter() - t0, _cpu(sp.proc.pid) - c0
        assert row["state"] == "success", row
    finally:
        if scraper is not None:
            scraper.close()
        sp.stop()
        if sink is not None:
            sink.close()
        if collector is not None:
            collector.server.shutdown()
    return wall, cpu, (scraper.scrapes if scraper else 0), (sink.datagrams if sink else 0)


def bench_metrics_cost(n: int = 10_000, rounds: int = 3) -> None:
    """Wall time and the standalone process's CPU, off and on alternating; median of each."""
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    scrapes = datagrams = 0
    for r in range(rounds):
        # off-on, on-off, ...: a machine growing busier (or quieter) during the benchmark
        # does not always favour the side that runs first.
        for on in (False, True) if r % 2 == 0 else (True, False):
            wall, cpu, s, d = _one(n, on)
            runs[on].append((wall, cpu))
            scrapes, datagrams = scrapes + s, datagrams + d
    for on in (False, True):
        shown = ", ".join(f"{w:.2f} s / {c:.2f} s CPU" for w, c in runs[on])
        print(f"  ({'on ' if on else 'off'}: {shown})")
    print(f"  ({scrapes} scrapes, {datagrams} StatsD datagrams while on)")
    wall_off, wall_on = (statistics.median(w for w, _ in runs[on]) for on in (False, True))
    cpu_off, cpu_on = (statistics.median(c for _, c in runs[on]) for on in (False, True))
    report(f"standalone N={n}, observability off: trigger to success", wall_off, "s", None)
    report(f"standalone N={n}, observability on: trigger to success", wall_on, "s", None)
    report(
        f"standalone N={n}: cost of observability, wall time", (wall_on - wall_off) / wall_off * 100, "%", 5.0
    )
    report(
        f"standalone N={n}: cost of observability, scheduler+API CPU",
        (cpu_on - cpu_off) / cpu_off * 100,
        "%",
        5.0,
    )


def bench_hook_cost(n: int = 10_000) -> None:
    """The scheduler's metric hooks for N attempts, in-process, without the rest of the
    scheduler: what metrics add per attempt, independent of how busy the machine is."""
    from millstream.core.states import TaskState
    from millstream.scheduler.metrics import Metrics
    from millstream.worker.item import WorkItem

    template = WorkItem(
        run_pk=1, dag_id="d", run_id="r", task_id="t", map_index=0, try_number=1, fileloc="f.py",
        run_type="manual", logical_date=None, data_interval_start=None, data_interval_end=None,
        conf={}, params={}, log_path="x.log",
    )  # fmt: skip
    items = [dataclasses.replace(template, map_index=i) for i in range(n)]
    m = Metrics()
    now = datetime.now(UTC)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for chunk in range(0, n, 32):  # as dispatched and applied: a few dozen per turn
            batch = items[chunk : chunk + 32]
            m.dispatched(batch)
            for it in batch:
                m.started("d", it, now)
            m.publish()
            for it in batch:
                m.attempt_ended("d", it, "success", 0.01)
                m.states("d", "t", TaskState.SUCCESS, 1)
            m.publish()
        best = min(best, time.perf_counter() - t0)
    report("metric hooks per attempt (in-process)", best / n * 1e6, "us", None)


def main() -> None:
    print("Observability")
    bench_hook_cost()
    bench_metrics_cost()


if __name__ == "__main__":
    main()
