"""Backfill (issue: time schedules, catchup and backfill).

365 daily runs of the 3-task extract >> transform >> load DAG with --max-active-runs 16,
through `millstream standalone` (local executor, SQLite file): create to all success <= 15 s.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import SchedulerProcess, report, wait_for

EXAMPLE = (Path(__file__).resolve().parents[1] / "examples" / "daily_report.py").read_text()


def main() -> None:
    print("Backfill")
    sp = SchedulerProcess({"daily_report.py": EXAMPLE})
    try:
        sp.start()
        sp.wait_parsed("daily_report")
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "millstream.cli",
                "backfill",
                "create",
                "--dag-id",
                "daily_report",
                "--from-date",
                "2025-01-01",
                "--to-date",
                "2025-12-31",
                "--max-active-runs",
                "16",
                "--detach",
            ],
            env=sp.env,
            check=True,
            capture_output=True,
        )
        from millstream.store import backfills as backfills_q

        def done() -> bool:
            with sp.store.read() as conn:  # type: ignore[union-attr]
                return backfills_q.get(conn, 1)["state"] == "completed"

        wait_for(done, 600, "the backfill", 0.02)
        wall = time.perf_counter() - t0
        with sp.store.read() as conn:  # type: ignore[union-attr]
            progress = backfills_q.progress(conn, 1)
        assert progress["success"] == 365, progress
    finally:
        sp.stop()
    report("backfill 365 daily runs (3 tasks), max_active_runs 16: create to done", wall, "s", 15.0)
    report("backfill 365 daily runs: throughput", 365 / wall, "runs/s", None, lower_is_better=False)


if __name__ == "__main__":
    main()
