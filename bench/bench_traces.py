"""What OpenTelemetry traces cost (issue: operating it): the reference DAG at N = 10 000
through `millstream standalone` (local executor, SQLite file), traces off and on in one
run, alternating, target: on adds <= 5 %.

"On" sends every span (a run, 10 002 instances, 10 002 attempts) over OTLP/HTTP to a
collector this process runs, which only stores the request bodies while the run goes and
decodes them afterwards, to check that every span arrived.

    .venv/bin/python bench/bench_traces.py [N] [ROUNDS]
"""

from __future__ import annotations

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import SchedulerProcess, report, seed_source


class Collector:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def span_names(self) -> list[str]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        names = []
        for body in self.bodies:
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            names += [s.name for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return names


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(n: int, collector: Collector | None) -> tuple[float, float, float]:
    """(wall seconds trigger to success, CPU seconds of the scheduler process, of its tree)."""
    env = {"MILLSTREAM__TRACES__OTEL_ON": "false"}
    if collector is not None:
        env = {
            "MILLSTREAM__TRACES__OTEL_ON": "true",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint,
        }
    sp = SchedulerProcess({"seed.py": seed_source(n)}, extra_env=env)
    try:
        sp.start()
        sp.wait_parsed("process_daily_files")
        assert sp.proc is not None
        cpu0, tree0 = _cpu(sp.proc.pid), sp.cpu_seconds()
        t0 = time.perf_counter()
        run_id = sp.trigger("process_daily_files")
        row = sp.wait_run("process_daily_files", run_id, timeout=900)
        wall = time.perf_counter() - t0
        cpu, tree = _cpu(sp.proc.pid) - cpu0, sp.cpu_seconds() - tree0
        assert row["state"] == "success", row
    finally:
        sp.stop()
    return wall, cpu, tree


def main(n: int = 10_000, rounds: int = 2) -> None:
    print("Traces on and off")
    off: list[tuple[float, float, float]] = []
    on: list[tuple[float, float, float]] = []
    spans = 0
    for _ in range(rounds):
        off.append(run_once(n, None))
        collector = Collector()
        on.append(run_once(n, collector))
        names = collector.span_names()  # after the scheduler stopped (it flushes on exit)
        collector.server.shutdown()
        spans = len(names)
        expected = 1 + 2 * (n + 2)  # the run; an instance and an attempt per task instance
        assert names.count("dag_run.process_daily_files") == 1 and spans == expected, (spans, expected)
    for i, what in ((0, "trigger to success"), (1, "scheduler process CPU"), (2, "process tree CPU")):
        best_off, best_on = min(r[i] for r in off), min(r[i] for r in on)
        report(f"standalone N={n}, traces off: {what} (best of {rounds})", best_off, "s", None)
        report(f"standalone N={n}, traces on: {what} (best of {rounds})", best_on, "s", None)
        report(
            f"standalone N={n}: traces on vs off, {what}",
            (best_on / best_off - 1) * 100,
            "%",
            5.0 if i == 0 else None,
        )
    print(
        "  (every round, off/on:",
        [(round(a[0], 2), round(b[0], 2)) for a, b in zip(off, on, strict=True)],
        ")",
    )
    report(f"standalone N={n}: spans received by the collector", spans, "spans", None, lower_is_better=False)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
