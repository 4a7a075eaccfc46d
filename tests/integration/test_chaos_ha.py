"""Crash harness for several schedulers: two `millstream scheduler` processes on one
PostgreSQL database, one of them SIGKILLed (with its workers) at random moments and
restarted. Every run finishes, and nothing recorded as succeeded ever runs again.

The short version runs in the suite; `make chaos` runs the long one (MILLSTREAM_CHAOS_LONG=1).
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict

from .conftest import wait_for
from .test_several_schedulers import FANOUT, Cluster

LONG = os.environ.get("MILLSTREAM_CHAOS_LONG") == "1"
RUNS, WIDTH, KILLS = (6, 300, 12) if LONG else (3, 100, 3)


def test_schedulers_killed_at_random_never_rerun_succeeded_work(tmp_path, pg_url):
    out = tmp_path / "out.txt"
    cluster = Cluster(tmp_path, pg_url, FANOUT.format(out=str(out), sleep=0.01))
    rng = random.Random(11)
    snapshots: list[tuple[float, set[tuple[str, int]]]] = []

    try:
        cluster.start()
        ids = cluster.trigger(n=WIDTH, runs=RUNS)
        for k in range(KILLS):
            lines = len(out.read_text().splitlines()) if out.exists() else 0
            target = min(RUNS * WIDTH - 1, lines + rng.randint(10, RUNS * WIDTH // (KILLS + 1)))
            wait_for(
                lambda t=target: (
                    (len(out.read_text().splitlines()) if out.exists() else 0) >= t
                    or all(cluster.states().get(r) == "success" for r in ids)
                ),
                120,
                f"progress before kill {k}",
            )
            victim = rng.randrange(len(cluster.procs))
            done = cluster.succeeded(ids)
            snapshots.append(
                (time.time(), done)
            )  # the time after the read: all of `done` succeeded before it
            os.killpg(cluster.procs[victim].pid, signal.SIGKILL)
            cluster.procs[victim].wait(10)
            home = cluster.homes[victim]
            cluster.procs[victim] = subprocess.Popen(
                [sys.executable, "-m", "millstream.cli", "scheduler"],
                env=cluster.env(home),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for(lambda: all(cluster.states().get(r) == "success" for r in ids), 300, "every run to finish")
        assert cluster.succeeded(ids) == {(r, i) for r in ids for i in range(WIDTH)}
    finally:
        cluster.stop()
    starts = defaultdict(list)
    lines_of = defaultdict(list)
    for line in out.read_text().splitlines():
        run_id, i, _try, started = line.split()
        starts[(run_id, int(i))].append(float(started))
        lines_of[(run_id, int(i))].append(line)
    assert len(starts) == RUNS * WIDTH
    rerun_after_success = [
        (key, at) for at, done in snapshots for key in done if any(s > at for s in starts[key])
    ]
    assert rerun_after_success == [], [(k, at, lines_of[k]) for k, at in rerun_after_success[:3]]
