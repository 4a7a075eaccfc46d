"""Mapping at scale (issue: dynamic task mapping, complete and at scale).

The reference DAG through `millstream standalone` (local executor, SQLite file):
- N = 10 000: trigger to success <= 15 s
- N = 100 000: trigger to success <= 120 s, peak memory of the whole process tree <= 1.5 GB
- the cost per mapped instance at N = 1 000, 10 000, 100 000 (it should stay flat)
"""

from __future__ import annotations

import threading
import time

from common import SchedulerProcess, report, seed_source


def run_seed(n: int) -> tuple[float, float]:
    """(seconds from trigger to success, peak MB of the process tree)."""
    sp = SchedulerProcess({"seed.py": seed_source(n)})
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sp.rss_mb())
            done.wait(0.2)

    try:
        sp.start()
        sp.wait_parsed("process_daily_files")
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        run_id = sp.trigger("process_daily_files")
        row = sp.wait_run("process_daily_files", run_id, timeout=900)
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        assert row["state"] == "success", row
        tis = sp.tis("process_daily_files", run_id)
        assert sum(1 for t in tis if t["task_id"] == "process_file" and t["state"] == "success") == n
    finally:
        done.set()
        sp.stop()
    return wall, peak


def main(sizes: tuple[int, ...] = (1_000, 10_000, 100_000)) -> None:
    print("Mapping at scale")
    targets = {10_000: 15.0, 100_000: 120.0}
    for n in sizes:
        wall, peak = run_seed(n)
        report(f"standalone, reference DAG N={n}: trigger to success", wall, "s", targets.get(n))
        report(f"standalone, reference DAG N={n}: per mapped instance", wall / n * 1000, "ms", None)
        report(
            f"standalone, reference DAG N={n}: peak memory, process tree",
            peak,
            "MB",
            1536.0 if n == 100_000 else None,
        )


if __name__ == "__main__":
    import sys

    main(tuple(int(a) for a in sys.argv[1:]) or (1_000, 10_000, 100_000))
