"""Two schedulers on one PostgreSQL database: the work is shared, nothing runs twice, and
when one is killed the other finishes everything."""

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from millstream import control
from millstream.scheduler.wakeup import notify
from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import schedulers as schedulers_q
from millstream.store import task_instances as ti_q

from .conftest import wait_for

FANOUT = """
import os, time
from pathlib import Path
from millstream import dag, task

OUT = Path({out!r})

@dag(schedule=None, max_active_runs=32, max_active_tasks=64)
def fanout():
    @task
    def items(dag_run=None):
        return list(range(int(dag_run.conf.get("n", 500))))

    @task
    def work(i, run_id=None, ti=None):
        started = time.time()
        time.sleep({sleep})
        fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # short appends stay whole
        os.write(fd, f"{{run_id}} {{i}} {{ti.try_number}} {{started}}\\n".encode())
        os.close(fd)

    work.expand(i=items())

fanout()
"""


class Cluster:
    """N `millstream scheduler` processes, each with its own home, on one database."""

    def __init__(self, tmp_path: Path, url: str, source: str, n: int = 2) -> None:
        self.dags = tmp_path / "dags"
        self.dags.mkdir()
        (self.dags / "fanout.py").write_text(textwrap.dedent(source))
        self.url = url
        self.homes = [tmp_path / f"home{i}" for i in range(n)]
        self.procs: list[subprocess.Popen] = []
        self.store = Store(url)
        self.store.migrate()

    def env(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "MILLSTREAM_HOME": str(home),
            "MILLSTREAM_DAGS_FOLDER": str(self.dags),
            "MILLSTREAM_DATABASE_URL": self.url,
            "MILLSTREAM_PAUSED_ON_CREATION": "false",
            "MILLSTREAM_PARALLELISM": "2",
            "MILLSTREAM__SCHEDULER__POLL_INTERVAL": "0.2",
            "MILLSTREAM__SCHEDULER__HEARTBEAT_TIMEOUT": "3",
        }

    def start(self) -> None:
        for home in self.homes:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "millstream.cli", "scheduler"],
                    env=self.env(home),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

        def parsed_and_live():
            with self.store.read() as conn:
                dags = [r["dag_id"] for r in dags_q.list_dags(conn)]
                live = [r for r in schedulers_q.list_all(conn) if r["stopped_at"] is None]
            return "fanout" in dags and len(live) == len(self.homes)

        wait_for(parsed_and_live, 60, "both schedulers to start and parse")

    def trigger(self, n: int, runs: int) -> list[str]:
        ids = [control.trigger(self.store, "fanout", conf={"n": n}, run_id=f"r{i}") for i in range(runs)]
        for home in self.homes:
            notify(home)
        return ids

    def succeeded(self, ids: list[str]) -> set[tuple[str, int]]:
        """(run_id, map_index) of every `work` instance recorded as succeeded."""
        with self.store.read() as conn:
            return {
                (r, t["map_index"])
                for r in ids
                for t in ti_q.list_for_run(conn, runs_q.get_run(conn, "fanout", r)["id"])
                if t["task_id"] == "work" and t["state"] == "success"
            }

    def states(self) -> dict[str, str]:
        with self.store.read() as conn:
            return {r["run_id"]: r["state"] for r in runs_q.list_runs(conn, "fanout", limit=1000)}

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.store.dispose()


def executions(out: Path) -> list[tuple[str, int, int]]:
    """Whole lines only: a read can overlap a worker's append, and Linux does not make a
    buffered read atomic against a write, so the last line may still be half there."""
    text = out.read_text() if out.exists() else ""
    lines = text[: text.rfind("\n") + 1].splitlines()
    return [(r, int(i), int(t)) for r, i, t, _started in (line.split() for line in lines)]


def test_two_schedulers_share_5000_instances_and_run_each_once(tmp_path, pg_url):
    out = tmp_path / "out.txt"
    cluster = Cluster(tmp_path, pg_url, FANOUT.format(out=str(out), sleep=0))
    try:
        cluster.start()
        ids = cluster.trigger(n=500, runs=10)
        wait_for(lambda: all(cluster.states().get(r) == "success" for r in ids), 240, "all 10 runs")
        with cluster.store.read() as conn:
            owners = Counter(runs_q.get_run(conn, "fanout", r)["owner"] for r in ids)
    finally:
        cluster.stop()
    done = executions(out)
    counts = Counter((r, i) for r, i, _ in done)
    assert len(counts) == 5000
    assert [k for k, n in counts.items() if n > 1] == []  # zero duplicate executions
    assert len(owners) == 2, f"one scheduler did all the work: {owners}"


def test_one_scheduler_killed_mid_run_the_other_finishes_everything(tmp_path, pg_url):
    out = tmp_path / "out.txt"
    cluster = Cluster(tmp_path, pg_url, FANOUT.format(out=str(out), sleep=0.01))
    try:
        cluster.start()
        ids = cluster.trigger(n=200, runs=6)
        wait_for(lambda: len(executions(out)) > 300, 120, "some progress")

        def owned_by(proc_index):
            sid_prefix = f"-{cluster.procs[proc_index].pid}-"
            with cluster.store.read() as conn:
                return [r for r in ids if sid_prefix in (runs_q.get_run(conn, "fanout", r)["owner"] or "")]

        victim = 0 if owned_by(0) else 1
        assert owned_by(victim), "the victim owns no running run"
        done_before_kill = cluster.succeeded(ids)
        os.killpg(cluster.procs[victim].pid, signal.SIGKILL)
        # Runs that ended before the kill keep the owner that ended them (the victim, maybe).
        ended_before_kill = {r for r, s in cluster.states().items() if s in ("success", "failed")}
        cluster.procs[victim].wait(10)
        wait_for(
            lambda: all(cluster.states().get(r) == "success" for r in ids), 240, "the survivor to finish"
        )
        with cluster.store.read() as conn:
            survivor = {runs_q.get_run(conn, "fanout", r)["owner"] for r in ids if r not in ended_before_kill}
            assert all(
                t["state"] == "success"
                for r in ids
                for t in ti_q.list_for_run(conn, runs_q.get_run(conn, "fanout", r)["id"])
            )
    finally:
        cluster.stop()
    assert len(survivor) == 1  # every run still going at the kill ended with the survivor
    counts = Counter((r, i) for r, i, _ in executions(out))
    assert len(counts) == 1200
    # Only attempts the kill cut short ran again: nothing recorded as succeeded did, and
    # no more than the victim could have had in hand (2 workers with their prefetch).
    repeated = {k for k, n in counts.items() if n > 1}
    assert not repeated & done_before_kill, sorted(repeated & done_before_kill)
    assert len(repeated) <= 2 * 17, sorted(repeated)


def test_a_scheduler_that_lost_its_run_to_another_stops_its_attempts(harness, tmp_path):
    """A scheduler presumed dead (paused too long) whose run another one adopted must
    not go on running that run's attempts on its local workers, nor write their outcome."""
    import sqlalchemy as sa

    from millstream.store.tables import dag_run

    started = tmp_path / "started"
    harness.write_dag(
        "slow.py",
        f"""
import os, time
from pathlib import Path
from millstream import dag, task

@dag(schedule=None)
def slow():
    @task
    def work():
        Path({str(started)!r}).write_text(str(os.getpid()))
        time.sleep(600)

    work()

slow()
""",
    )
    harness.start()
    run_id = harness.trigger("slow")
    wait_for(lambda: started.exists() and started.read_text(), 30, "the attempt to start")
    pid = int(started.read_text())
    with harness.store.begin() as conn:  # as if another, live, scheduler had adopted it
        schedulers_q.register(conn, "someone-else", "other-host", 1, datetime.now(UTC))
        conn.execute(dag_run.update().where(dag_run.c.run_id == run_id).values(owner="someone-else"))
    harness.scheduler.nudge()
    wait_for(lambda: not harness.scheduler.runs, 30, "the run to be dropped")

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, 30, "the attempt's worker process to be stopped")
    # Nothing of that attempt was written: the run is the new owner's to finish.
    assert harness.tis("slow", run_id)["work"]["state"] == "running"
    with harness.store.read() as conn:
        owner = conn.execute(sa.select(dag_run.c.owner).where(dag_run.c.run_id == run_id)).scalar()
    assert owner == "someone-else"
