"""Scale-out (issue: PostgreSQL, Celery workers, several schedulers).

Throughput of trivial task instances on Celery (Redis broker) + PostgreSQL with 2 Celery
workers (concurrency 2 each), driven by 1 and then by 2 `millstream scheduler` processes.
4 runs of a DAG mapping a trivial task over 500 items: 2 004 task instances per round.
The machine has 2 cores, shared by the schedulers, the workers, PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from common import report, wait_for

from millstream import control
from millstream.executors.celery import status
from millstream.scheduler.wakeup import notify
from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q

PG = os.environ.get("MILLSTREAM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("MILLSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

DAG = """
from millstream import dag, task

@dag(schedule=None, max_active_runs=8, max_active_tasks=256)
def trivial():
    @task
    def items():
        return list(range(500))

    @task
    def noop(i):
        return i

    noop.expand(i=items())

trivial()
"""


def round_trip(schedulers: int) -> float:
    schema = f"ms_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    tmp = Path(tempfile.mkdtemp(prefix="millstream-bench-"))
    (tmp / "dags").mkdir()
    (tmp / "dags" / "trivial.py").write_text(textwrap.dedent(DAG))
    store = Store(url)
    store.migrate()
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str) -> None:
        env = {
            **os.environ,
            "MILLSTREAM_HOME": str(tmp / name),
            "MILLSTREAM_DAGS_FOLDER": str(tmp / "dags"),
            "MILLSTREAM_DATABASE_URL": url,
            "MILLSTREAM_PAUSED_ON_CREATION": "false",
            "MILLSTREAM__SCHEDULER__EXECUTOR": "celery",
            "MILLSTREAM__SCHEDULER__POLL_INTERVAL": "0.2",
            "MILLSTREAM__CELERY__BROKER_URL": REDIS,
            "MILLSTREAM__CELERY__DEFAULT_QUEUE": queue,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "millstream.cli", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    try:
        for i in range(2):
            spawn(f"worker{i}", "celery", "worker", "-c", "2")
        for i in range(schedulers):
            spawn(f"scheduler{i}", "scheduler")

        def parsed() -> bool:
            with store.read() as conn:
                return any(r["dag_id"] == "trivial" for r in dags_q.list_dags(conn))

        wait_for(parsed, 60, "the DAG", 0.05)
        # Both workers listening before the clock starts (start-up is not what we measure).
        wait_for(
            lambda: len([w for w in status(REDIS, queue) if queue in w["queues"]]) == 2, 60, "workers", 0.2
        )
        t0 = time.perf_counter()
        ids = [control.trigger(store, "trivial", run_id=f"r{i}") for i in range(4)]
        for i in range(schedulers):
            notify(tmp / f"scheduler{i}")

        def done() -> bool:
            with store.read() as conn:
                states = [runs_q.get_run(conn, "trivial", r)["state"] for r in ids]
            return all(s in ("success", "failed") for s in states)

        wait_for(done, 600, "the runs", 0.02)
        wall = time.perf_counter() - t0
        with store.read() as conn:
            assert all(runs_q.get_run(conn, "trivial", r)["state"] == "success" for r in ids)
        return 2004 / wall
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(30)
        store.dispose()
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    print("Scale-out (Celery + PostgreSQL, 2 workers x 2 processes)")
    one = round_trip(1)
    report("celery+postgres, 2 workers, 1 scheduler: trivial TIs", one, "TI/s", None, lower_is_better=False)
    two = round_trip(2)
    report("celery+postgres, 2 workers, 2 schedulers: trivial TIs", two, "TI/s", None, lower_is_better=False)


if __name__ == "__main__":
    main()
