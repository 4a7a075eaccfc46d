"""Airflow's REST API v2 on a wide run (issue: Airflow 3.3 REST API v2).

Through `millstream standalone` (SQLite file, API in the same process): one run of a task
mapped over 10 000 items, run by the engine itself. Its 10 002 task instances are then read
as an Airflow client reads them: ``GET /api/v2/dags/{dag}/dagRuns/{run}/taskInstances`` in
pages of 100 (offset paging), with a JWT from ``POST /auth/token``, over one kept-alive HTTP
connection. Every page is timed; the median and the 95th percentile must stay <= 50 ms.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
import urllib.parse
from typing import Any

from bench_ui import WIDE  # the same 10 000-instance DAG the UI benchmark pages
from common import SchedulerProcess, report

PAGE = 100


class Client:
    """One HTTP/1.1 connection, as a client library keeps one."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers: dict[str, str] = {"Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.conn.request(
            method, path, None if body is None else json.dumps(body).encode(), headers=self.headers
        )
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"null")


def main() -> None:
    print("REST API v2")
    sp = SchedulerProcess({"wide.py": WIDE})
    try:
        sp.start()
        sp.wait_parsed("wide")
        from millstream.store import users as users_q

        assert sp.store is not None
        with sp.store.begin() as conn:
            users_q.create_user(conn, "bench", "bench-password", "admin")
        run_id = sp.trigger("wide")
        assert sp.wait_run("wide", run_id)["state"] == "success"

        api = Client(sp.port)
        status, body = api.call("POST", "/auth/token", {"username": "bench", "password": "bench-password"})
        assert status == 201, (status, body)
        api.headers["Authorization"] = f"Bearer {body['access_token']}"
        path = f"/api/v2/dags/wide/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"

        def page(offset: int) -> tuple[float, dict[str, Any]]:
            t0 = time.perf_counter()
            status, body = api.call("GET", f"{path}?limit={PAGE}&offset={offset}")
            ms = (time.perf_counter() - t0) * 1000
            assert status == 200, (status, body)
            return ms, body

        for offset in (0, 5000, 9900):  # warm
            page(offset)
        times: list[float] = []
        seen: set[tuple[str, int]] = set()
        offset, total = 0, None
        while total is None or offset < total:
            ms, body = page(offset)
            times.append(ms)
            total = body["total_entries"]
            assert len(body["task_instances"]) == min(PAGE, total - offset), (
                offset,
                len(body["task_instances"]),
            )
            seen.update((t["task_id"], t["map_index"]) for t in body["task_instances"])
            offset += PAGE
        assert total == 10_002 and len(seen) == total, (total, len(seen))
    finally:
        sp.stop()
    first, last = statistics.median(times[:10]), statistics.median(times[-10:])
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    print(
        f"  ({len(times)} pages of {PAGE} over {total} task instances; median of the first 10 pages "
        f"{first:.1f} ms, of the last 10 {last:.1f} ms; slowest {times[-1]:.1f} ms)"
    )
    report("API v2 task instances, page of 100 of 10 002: median", statistics.median(times), "ms", 50.0)
    report("API v2 task instances, page of 100 of 10 002: p95", p95, "ms", 50.0)


if __name__ == "__main__":
    main()
