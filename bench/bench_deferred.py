"""Deferrable tasks at scale, and the isolated-Python cache.

1. 10 000 deferred tasks on the embedded triggerer of `millstream standalone`: one mapped
   operator whose 10 000 instances each defer on a ``TimeDeltaTrigger`` of 30 s. Measured:
   the peak memory of the scheduler process (its triggerer is a thread of it) and of the
   whole process tree; the CPU the tree uses while all 10 000 wait (between the last
   deferral and the first due time); and, per instance, how late it resumed — the
   resumed attempt reads the clock against the trigger's moment — as the median, the 99th
   percentile and the worst.
2. A second ``@task.virtualenv`` call with requirements already built: its overhead over
   a plain ``@task`` (the median of five, under ``dag.test()``).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from common import SchedulerProcess, report, wait_for

N = 10_000
DELAY = 30.0

DAG_SOURCE = f"""
from datetime import datetime, timedelta, timezone
from millstream import DAG, BaseOperator
from millstream.sdk.standard.triggers import TimeDeltaTrigger


class Wait(BaseOperator):
    def __init__(self, *, n, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds={DELAY})), method_name="done")

    def done(self, context, event=None):
        return (datetime.now(timezone.utc) - event).total_seconds()


with DAG("deferred_many", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc)):
    Wait.partial(task_id="wait").expand(n=list(range({N})))
"""


def _counts(proc: SchedulerProcess) -> dict[str, int]:
    assert proc.store is not None
    with proc.store.read() as conn:
        rows = conn.execute(
            sa.text("select state, count(*) from task_instance where dag_id = 'deferred_many' group by state")
        ).all()
    return {s: n for s, n in rows}


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def deferred_at_scale() -> None:
    proc = SchedulerProcess({"deferred.py": DAG_SOURCE})
    try:
        proc.start()
        proc.wait_parsed("deferred_many")
        run_id = proc.trigger("deferred_many")
        t0 = time.monotonic()
        wait_for(lambda: _counts(proc).get("deferred", 0) == N, 300, "every instance deferred", 0.2)
        all_deferred = time.monotonic()
        cpu0, w0 = proc.cpu_seconds(), time.monotonic()
        # The first ones fall due DELAY after they deferred; stop measuring a little before.
        quiet = max(1.0, DELAY - (all_deferred - t0) - 1.0)
        time.sleep(quiet)  # the measurement window itself: nothing to wait on but the clock
        waiting_cpu = (proc.cpu_seconds() - cpu0) / (time.monotonic() - w0)
        rss_waiting = proc.rss_mb()
        row = proc.wait_run("deferred_many", run_id, timeout=600)
        scheduler_peak = _peak_kb(proc.pids()[0]) / 1024
        assert proc.store is not None
        with proc.store.read() as conn:
            late = [
                float(json.loads(v))
                for (v,) in conn.execute(
                    sa.text(
                        "select r.value from task_result r join dag_run d on d.id = r.run_pk "
                        "where d.dag_id = 'deferred_many' and r.key = 'return_value'"
                    )
                )
            ]
    finally:
        proc.stop()
    assert row["state"] == "success", row
    assert len(late) == N, len(late)
    late.sort()
    print(f"  ({N} deferred in {all_deferred - t0:.1f} s; quiet window {quiet:.1f} s)")
    report(f"deferred: {N} waiting, scheduler process peak memory", scheduler_peak, "MB", 300)
    report(f"deferred: {N} waiting, process tree memory", rss_waiting, "MB", None)
    report(f"deferred: {N} waiting, CPU of the process tree", waiting_cpu * 100, "%", 2)
    report("deferred: resumed after due time, median", statistics.median(late), "s", 1)
    report("deferred: resumed after due time, p99", late[int(len(late) * 0.99)], "s", None)
    report("deferred: resumed after due time, worst", late[-1], "s", 1)


def venv_overhead() -> None:
    from millstream import DAG, task

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MILLSTREAM_VENV_CACHE"] = tmp
        with DAG("venv_bench", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC)) as dag:

            @task.virtualenv(requirements=["six"], system_site_packages=False)
            def isolated():
                import six

                return six.__version__

            @task
            def plain():
                return "1"

            isolated()
            plain()
        first = dag.test()  # builds the environment
        assert first.ti("isolated").state.value == "success", first.ti("isolated").reason

        def durations() -> tuple[float, float]:
            run = dag.test()
            out = {}
            for ti in run.task_instances:
                # "success after 0.123s": the attempt's own time, as its worker measured it
                line = [ln for ln in ti.log.splitlines() if " after " in ln][-1]
                out[ti.task_id] = float(line.rsplit(" after ", 1)[1].split("s")[0])
            return out["isolated"], out["plain"]

        pairs = [durations() for _ in range(5)]
        os.environ.pop("MILLSTREAM_VENV_CACHE", None)
    report(
        "virtualenv: cached environment, overhead over a plain @task",
        statistics.median(a - b for a, b in pairs),
        "s",
        0.5,
    )


def main() -> None:
    venv_overhead()
    deferred_at_scale()


if __name__ == "__main__":
    main()
