"""Crash harness: a scheduler killed with SIGKILL at random moments (and, separately,
worker processes killed at random) still finishes every run, and no task instance that
reached success is ever executed again.

The short version runs in the suite; `make chaos` runs the long one (1 000 task
instances, 20 kills of each kind) by setting MILLSTREAM_CHAOS_LONG=1.
"""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from millstream.store import Store
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q

from .conftest import wait_for

LONG = os.environ.get("MILLSTREAM_CHAOS_LONG") == "1"

DAG = """
import json, os, time
from pathlib import Path
from millstream import dag, task

MARKS = Path({marks!r})

def mark(task_id, map_index, try_number):
    # One line per attempt that got to the end of its work; O_APPEND keeps lines whole.
    line = json.dumps([task_id, map_index, try_number]) + "\\n"
    fd = os.open(MARKS, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line.encode())
    os.close(fd)

@dag
def chaos():
    @task(retries=5, retry_delay=0)
    def items(ti=None):
        mark("items", -1, ti.try_number)
        return list(range({width}))

    @task(retries=5, retry_delay=0)
    def first(x, ti=None):
        time.sleep({work})
        mark("first", ti.map_index, ti.try_number)
        return x

    @task(retries=5, retry_delay=0)
    def second(y, ti=None):
        time.sleep({work})
        mark("second", ti.map_index, ti.try_number)
        return y

    @task(retries=5, retry_delay=0)
    def total(values, ti=None):
        mark("total", -1, ti.try_number)
        return sum(values)

    total(second.expand(y=first.expand(x=items())))

chaos()
"""


def scheduler(env):
    return subprocess.Popen(
        [sys.executable, "-m", "millstream.cli", "scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def run_chaos(tmp_path: Path, *, width: int, kills: int, kill: str, work: float) -> dict[str, int]:
    home, dags, marks = tmp_path / "home", tmp_path / "dags", tmp_path / "marks.jsonl"
    dags.mkdir()
    (dags / "chaos.py").write_text(textwrap.dedent(DAG.format(marks=str(marks), width=width, work=work)))
    env = {
        **os.environ,
        "MILLSTREAM_HOME": str(home),
        "MILLSTREAM_DAGS_FOLDER": str(dags),
        "MILLSTREAM_PAUSED_ON_CREATION": "false",
        "MILLSTREAM_POLL_INTERVAL": "0.2",
    }
    subprocess.run(
        [sys.executable, "-m", "millstream.cli", "dags", "trigger", "chaos", "--run-id", "c"],
        env=env,
        check=True,
        capture_output=True,
    )
    store = Store(f"sqlite:///{home / 'millstream.db'}")
    rng = random.Random(int(os.environ.get("MILLSTREAM_CHAOS_SEED", "7")))

    def state() -> str:
        with store.read() as conn:
            return runs_q.get_run(conn, "chaos", "c")["state"]

    proc = scheduler(env)
    done_kills = 0
    try:
        while done_kills < kills and state() not in ("success", "failed"):
            time.sleep(rng.uniform(0.3, 1.2))  # a random moment: the point of the harness
            if state() in ("success", "failed"):
                break
            if kill == "scheduler":
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                proc = scheduler(env)
                done_kills += 1
            else:
                workers = children(proc.pid)
                if workers:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    done_kills += 1
        wait_for(lambda: state() in ("success", "failed"), 300 if LONG else 120, "the run to finish")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    with store.read() as conn:
        run = runs_q.get_run(conn, "chaos", "c")
        tis = ti_q.list_for_run(conn, run["id"])
    store.dispose()
    lines = [tuple(json.loads(line)) for line in marks.read_text().splitlines()]
    final = {(t["task_id"], t["map_index"]): t["try_number"] for t in tis}
    assert run["state"] == "success"
    assert len(tis) == 2 * width + 2 and all(t["state"] == "success" for t in tis)
    for (task_id, idx), try_number in final.items():
        attempts = [tn for t, i, tn in lines if (t, i) == (task_id, idx)]
        # The attempt recorded as the success ran to the end exactly once, and nothing ran after it.
        assert attempts.count(try_number) == 1, (task_id, idx, attempts, try_number)
        assert max(attempts) == try_number, (task_id, idx, attempts, try_number)
    counts = {
        "task_instances": len(tis),
        "kills": done_kills,
        "attempts_run_to_the_end": len(lines),
        "interrupted_attempts_repeated": len(lines) - len(tis),
    }
    print(f"chaos ({kill} kills): {counts}")
    return counts


def test_scheduler_killed_at_random_moments(tmp_path):
    width, kills = (499, 20) if LONG else (40, 3)
    counts = run_chaos(tmp_path, width=width, kills=kills, kill="scheduler", work=0.01)
    assert counts["kills"] >= 1


def test_workers_killed_at_random_moments(tmp_path):
    width, kills = (499, 20) if LONG else (40, 3)
    counts = run_chaos(tmp_path, width=width, kills=kills, kill="worker", work=0.02)
    assert counts["kills"] >= 1
