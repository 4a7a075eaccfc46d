"""Foundation benchmarks (issue: the engine end to end).

- reference DAG, N = 1 000, via `millstream dags test`: whole command <= 2 s
- reference DAG, N = 1 000, via `millstream standalone` (local executor, SQLite file), trigger to success <= 5 s
- a chain of 50 trivial tasks through the scheduler: trigger to success <= 1 s, median hop <= 10 ms
- scheduler CPU while idle with 20 paused DAGs: <= 1 % of a core
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import SchedulerProcess, report, seed_source


def bench_dags_test(n: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dags = Path(tmp) / "dags"
        dags.mkdir()
        (dags / "seed.py").write_text(textwrap.dedent(seed_source(n)))
        env_home = Path(tmp) / "home"
        t0 = time.perf_counter()
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "millstream.cli",
                "dags",
                "test",
                "process_daily_files",
                "-d",
                str(dags),
                "-q",
            ],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "MILLSTREAM_HOME": str(env_home)},
        )
        wall = time.perf_counter() - t0
        assert p.returncode == 0 and "success" in p.stdout, p.stderr + p.stdout
    report(f"dags test, reference DAG N={n}: whole command", wall, "s", 2.0)


def bench_scheduler_seed(n: int = 1000) -> None:
    sp = SchedulerProcess({"seed.py": seed_source(n)})
    try:
        sp.start()
        sp.wait_parsed("process_daily_files")
        t0 = time.perf_counter()
        run_id = sp.trigger("process_daily_files")
        row = sp.wait_run("process_daily_files", run_id)
        wall = time.perf_counter() - t0
        assert row["state"] == "success", row
    finally:
        sp.stop()
    report(f"standalone, reference DAG N={n}: trigger to success", wall, "s", 5.0)
    report(f"standalone, reference DAG N={n}: per mapped instance", wall / n * 1000, "ms", None)


CHAIN = """
from millstream import DAG, task

@task
def step(i):
    return i

with DAG("chain50"):
    prev = None
    for i in range(50):
        cur = step.override(task_id=f"t{i:02d}")(i)
        if prev is not None:
            prev >> cur
        prev = cur
"""


def bench_chain() -> None:
    sp = SchedulerProcess({"chain.py": CHAIN})
    try:
        sp.start()
        sp.wait_parsed("chain50")
        # Warm-up run: workers import the DAG file once; the measured run is the steady state.
        sp.wait_run("chain50", sp.trigger("chain50", run_id="warmup"))
        t0 = time.perf_counter()
        run_id = sp.trigger("chain50", run_id="measured")
        row = sp.wait_run("chain50", run_id)
        wall = time.perf_counter() - t0
        assert row["state"] == "success"
        tis = sorted(sp.tis("chain50", run_id), key=lambda r: r["task_id"])
        hops = [(b["start_date"] - a["end_date"]).total_seconds() * 1000 for a, b in itertools.pairwise(tis)]
    finally:
        sp.stop()
    report("chain of 50 trivial tasks: trigger to success", wall, "s", 1.0)
    report("chain of 50 trivial tasks: median hop", statistics.median(hops), "ms", 10.0)
    report("chain of 50 trivial tasks: p95 hop", sorted(hops)[int(len(hops) * 0.95)], "ms", None)


def bench_idle(seconds: float = 20.0) -> None:
    sources = {
        f"d{i:02d}.py": f"""
        from datetime import datetime
        from millstream import dag, task

        @dag(schedule="*/5 * * * *", start_date=datetime(2025, 1, 1))
        def idle_{i:02d}():
            @task
            def t():
                return 1
            t()

        idle_{i:02d}()
        """
        for i in range(20)
    }
    sp = SchedulerProcess(sources)  # new DAGs start paused
    try:
        sp.start()
        for i in range(20):
            sp.wait_parsed(f"idle_{i:02d}")
        time.sleep(3)  # let start-up settle before the measured window
        c0, t0 = sp.cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        c1, t1 = sp.cpu_seconds(), time.perf_counter()
    finally:
        sp.stop()
    report("idle scheduler, 20 paused DAGs: CPU (whole process tree)", (c1 - c0) / (t1 - t0) * 100, "%", 1.0)


def main() -> None:
    print("Foundation")
    bench_dags_test()
    bench_scheduler_seed()
    bench_chain()
    bench_idle()


if __name__ == "__main__":
    main()
