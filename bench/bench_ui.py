"""Web UI and API responsiveness (issue: REST API and web UI).

Through `millstream standalone` (SQLite file, API and UI in the same process): one run of
a task mapped over 10 000 items, and a DAG with 365 runs (a backfill of a year). Every
page a user opens on them is fetched over HTTP with a logged-in session; the median of 7
fetches must stay <= 300 ms and no page may carry every instance (HTML <= 300 KB).
"""

from __future__ import annotations

import http.cookiejar
import statistics
import time
import urllib.parse
import urllib.request
from pathlib import Path

from common import SchedulerProcess, report, wait_for

REPORT = (Path(__file__).resolve().parents[1] / "examples" / "daily_report.py").read_text()
WIDE = """
from millstream import dag, task

@dag(schedule=None)
def wide():
    @task
    def items():
        return [f"file_{i:05d}.csv" for i in range(10_000)]

    @task(map_index_template="{{ name }}")
    def process(name):
        return len(name)

    @task
    def total(sizes):
        print(sum(sizes))

    total(process.expand(name=items()))

wide()
"""


class Browser:
    """A logged-in session, as the UI's own fetches have."""

    def __init__(self, base: str, user: str, password: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        data = urllib.parse.urlencode({"username": user, "password": password}).encode()
        self.opener.open(base + "/login", data, timeout=30).read()

    def get(self, path: str) -> tuple[float, int]:
        t0 = time.perf_counter()
        with self.opener.open(self.base + path, timeout=60) as r:
            body = r.read()
            assert r.status == 200, (path, r.status)
        return (time.perf_counter() - t0) * 1000, len(body)


def main() -> None:
    print("Web UI and API")
    sp = SchedulerProcess({"daily_report.py": REPORT, "wide.py": WIDE})
    try:
        sp.start()
        sp.wait_parsed("wide")
        sp.wait_parsed("daily_report")
        from millstream import control
        from millstream.store import backfills as backfills_q
        from millstream.store import users as users_q

        assert sp.store is not None
        with sp.store.begin() as conn:
            users_q.create_user(conn, "bench", "bench-password", "admin")
        run_id = sp.trigger("wide")
        from datetime import UTC, datetime

        control.create_backfill(
            sp.store,
            "daily_report",
            datetime(2025, 1, 1, tzinfo=UTC),
            datetime(2025, 12, 31, tzinfo=UTC),
            max_active_runs=16,
        )
        assert sp.wait_run("wide", run_id)["state"] == "success"

        def backfilled() -> bool:
            with sp.store.read() as conn:  # type: ignore[union-attr]
                return backfills_q.get(conn, 1)["state"] == "completed"

        wait_for(backfilled, 600, "the backfill", 0.05)
        web = Browser(f"http://127.0.0.1:{sp.port}", "bench", "bench-password")
        r = urllib.parse.quote(run_id, safe="")
        pages = {
            "DAG list": "/",
            "grid, 10 000 mapped instances": "/dags/wide",
            "grid, DAG with 365 runs": "/dags/daily_report",
            "grid fragment (the 2 s live refresh), 365 runs": "/dags/daily_report?fragment=1",
            "run page + Gantt, 10 000 instances": f"/dags/wide/runs/{r}",
            "graph with run states, 10 000 instances": f"/dags/wide/runs/{r}/graph",
            "mapped instances, first page": f"/dags/wide/runs/{r}/tasks/process/instances",
            "mapped instances, last page": f"/dags/wide/runs/{r}/tasks/process/instances?offset=9950",
            "task instance + log, map index 9 999": f"/dags/wide/runs/{r}/tasks/process?map_index=9999",
            "backfill page, 365 runs": "/backfills/1",
            "API grid, 25 runs of 365": "/api/v1/dags/daily_report/grid?limit=25",
            "API task instances, 100 of 10 000": f"/api/v1/dags/wide/runs/{r}/tasks?limit=100&offset=5000",
        }
        results = {}
        for name, path in pages.items():
            web.get(path)  # warm
            samples = [web.get(path) for _ in range(7)]
            results[name] = (statistics.median(s[0] for s in samples), samples[0][1] / 1024)
    finally:
        sp.stop()
    for name, (ms, _kb) in results.items():
        report(f"UI {name}: median", ms, "ms", 300.0)
    report(
        "UI largest page (none renders every instance)", max(kb for _, kb in results.values()), "KB", 300.0
    )


if __name__ == "__main__":
    main()
