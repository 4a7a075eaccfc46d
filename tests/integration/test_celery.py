"""The Celery executor against the Redis and PostgreSQL on this machine: real workers."""

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from millstream import control
from millstream.scheduler.wakeup import notify
from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q

from ..conftest import REQUIRE_SERVICES
from .conftest import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REDIS_URL = os.environ.get("MILLSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("MILLSTREAM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def need_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as e:  # noqa: BLE001
        if REQUIRE_SERVICES:
            pytest.fail(
                f"Redis is required (MILLSTREAM_REQUIRE_SERVICES=1) but unreachable at {REDIS_URL}: {e}"
            )
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {e}")


def need_rabbitmq() -> None:
    import kombu

    try:
        with kombu.Connection(AMQP_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as e:  # noqa: BLE001
        if REQUIRE_SERVICES:
            pytest.fail(
                f"RabbitMQ is required (MILLSTREAM_REQUIRE_SERVICES=1) but unreachable at {AMQP_URL}: {e}"
            )
        pytest.skip(f"RabbitMQ not reachable at {AMQP_URL}: {e}")


class CeleryCluster:
    def __init__(self, tmp_path: Path, url: str, broker: str = REDIS_URL) -> None:
        if broker.startswith("redis"):
            need_redis()
        else:
            need_rabbitmq()
        self.broker = broker
        self.tmp = tmp_path
        self.dags = tmp_path / "dags"
        self.dags.mkdir()
        self.queue = f"ms-test-{uuid.uuid4().hex[:8]}"
        self.url = url
        self.store = Store(url)
        self.store.migrate()
        self.procs: dict[str, subprocess.Popen] = {}

    def env(self, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "MILLSTREAM_HOME": str(self.tmp / f"home-{name}"),
            "MILLSTREAM_DAGS_FOLDER": str(self.dags),
            "MILLSTREAM_DATABASE_URL": self.url,
            "MILLSTREAM_PAUSED_ON_CREATION": "false",
            "MILLSTREAM__SCHEDULER__EXECUTOR": "celery",
            "MILLSTREAM__SCHEDULER__POLL_INTERVAL": "0.2",
            "MILLSTREAM__CELERY__BROKER_URL": self.broker,
            "MILLSTREAM__CELERY__DEFAULT_QUEUE": self.queue,
            "MILLSTREAM__WORKER__LEASE_TIMEOUT": "3",
            "MILLSTREAM__RESULTS__OBJECT_STORE_URL": str(self.tmp / "results"),
        }

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("w")
        p = subprocess.Popen(
            [sys.executable, "-m", "millstream.cli", *args],
            env=self.env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = p
        return p

    def start(self, workers: int = 2, extra_queues: dict[str, str] | None = None) -> None:
        for i in range(workers):
            self.spawn(f"worker{i}", "celery", "worker", "-c", "2")
        for name, q in (extra_queues or {}).items():
            self.spawn(name, "celery", "worker", "-c", "1", "-q", q)
        self.spawn("scheduler", "scheduler")

    def wait_workers(self, n: int) -> list[dict]:
        import json

        def answered():
            p = subprocess.run(
                [sys.executable, "-m", "millstream.cli", "celery", "status", "-o", "json"],
                env=self.env("status"),
                capture_output=True,
                text=True,
            )
            workers = json.loads(p.stdout) if p.returncode == 0 else []
            # Only ours: the broker may serve other workers (another test run, a deployment).
            ours = [w for w in workers if any(q.startswith(self.queue) for q in w["queues"])]
            return len(ours) >= n and ours

        return wait_for(answered, 60, f"{n} Celery workers to answer")

    def wait_parsed(self, dag_id: str) -> None:
        def parsed():
            with self.store.read() as conn:
                return any(r["dag_id"] == dag_id for r in dags_q.list_dags(conn))

        wait_for(parsed, 60, f"{dag_id} to be parsed")

    def trigger(self, dag_id: str, **kw) -> str:
        self.wait_parsed(dag_id)
        run_id = control.trigger(self.store, dag_id, **kw)
        notify(self.tmp / "home-scheduler")
        return run_id

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 120) -> str:
        def state():
            with self.store.read() as conn:
                s = runs_q.get_run(conn, dag_id, run_id)["state"]
            return s if s in ("success", "failed") else None

        try:
            return wait_for(state, timeout, f"run {run_id}")
        except AssertionError:
            for name in self.procs:
                print(f"--- {name}.log ---\n" + (self.tmp / f"{name}.log").read_text()[-3000:])
            raise

    def tis(self, dag_id: str, run_id: str):
        with self.store.read() as conn:
            return ti_q.list_for_run(conn, runs_q.get_run(conn, dag_id, run_id)["id"])

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.store.dispose()


def test_reference_dag_and_a_1000_instance_map_on_two_workers(tmp_path, pg_url):
    c = CeleryCluster(tmp_path, pg_url)
    (c.dags / "process_daily_files.py").write_text((EXAMPLES / "process_daily_files.py").read_text())
    (c.dags / "wide.py").write_text(
        textwrap.dedent(
            """
            import os, socket
            from millstream import dag, task

            @dag(schedule=None, max_active_tasks=64)
            def wide():
                @task
                def items():
                    return list(range(1000))

                @task
                def square(i):
                    return {"i": i * i, "worker": f"{socket.gethostname()}:{os.getpid()}"}

                @task
                def total(results):
                    results = list(results)
                    return {"sum": sum(r["i"] for r in results), "workers": len({r["worker"] for r in results})}

                total(square.expand(i=items()))

            wide()
            """
        )
    )
    try:
        c.start(workers=2)
        workers = c.wait_workers(2)
        assert all(w["queues"] == [c.queue] for w in workers), workers
        ref = c.trigger("process_daily_files")
        assert c.wait_run("process_daily_files", ref) == "success"
        assert {t["task_id"] for t in c.tis("process_daily_files", ref) if t["state"] == "success"} == {
            "list_files",
            "process_file",
            "summarize",
        }
        # An API server on another host (another home, no logs of its own) shows the log
        # from the copy the worker left in the object store.
        from fastapi.testclient import TestClient

        from millstream.api import create_app
        from millstream.settings import Settings
        from millstream.store import users as users_q

        with c.store.begin() as conn:
            users_q.create_user(conn, "ops", "password-o", "viewer")
            token = users_q.create_token(conn, "ops", "t")
        api_env = {
            "MILLSTREAM_HOME": str(tmp_path / "api-host"),
            "MILLSTREAM__RESULTS__OBJECT_STORE_URL": str(tmp_path / "results"),
        }
        api = TestClient(
            create_app(Settings.load(environ=api_env), c.store), headers={"Authorization": f"Bearer {token}"}
        )
        from urllib.parse import quote

        log = api.get(
            f"/api/v1/dags/process_daily_files/runs/{quote(ref, safe='')}/tasks/process_file/logs/1",
            params={"map_index": 2},
        ).json()
        assert log["found"] and log["complete"] and "Processing file_003.csv" in log["content"]
        wide = c.trigger("wide")
        assert c.wait_run("wide", wide, timeout=240) == "success"
        with c.store.read() as conn:
            from millstream.store import results as results_q

            run_pk = runs_q.get_run(conn, "wide", wide)["id"]
            import json

            total = json.loads(results_q.get_one(conn, run_pk, "total", -1, "return_value"))
        assert total["sum"] == sum(i * i for i in range(1000))
        assert total["workers"] >= 2  # both workers' processes took part
    finally:
        c.stop()


def test_queues_route_tasks_and_a_killed_worker_is_retried_elsewhere(tmp_path, pg_url):
    c = CeleryCluster(tmp_path, pg_url)
    marker = tmp_path / "started"
    (c.dags / "routed.py").write_text(
        textwrap.dedent(
            f"""
            import os, socket, time
            from datetime import timedelta
            from pathlib import Path
            from millstream import dag, task

            @dag(schedule=None)
            def routed():
                @task(queue="{c.queue}-special")
                def special():
                    return os.environ["MILLSTREAM_HOME"]

                @task(retries=1, retry_delay=timedelta(seconds=0))
                def slow(ti=None):
                    Path({str(marker)!r}).write_text(f"{{os.getpid()}} {{ti.try_number}}")
                    if ti.try_number == 1:
                        time.sleep(600)  # killed before this ends
                    return os.environ["MILLSTREAM_HOME"]

                special() >> slow()

            routed()
            """
        )
    )
    try:
        c.start(workers=2, extra_queues={"special": f"{c.queue}-special"})
        c.wait_workers(3)
        run_id = c.trigger("routed")
        wait_for(lambda: marker.exists(), 60, "the slow task to start")
        pid, try_number = map(int, marker.read_text().split())
        assert try_number == 1
        os.kill(pid, signal.SIGKILL)  # the worker process running it dies mid-task
        assert c.wait_run("routed", run_id, timeout=120) == "success"
        tis = {t["task_id"]: t for t in c.tis("routed", run_id)}
        assert tis["slow"]["try_number"] == 2
        with c.store.read() as conn:
            from millstream.store import results as results_q

            run_pk = runs_q.get_run(conn, "routed", run_id)["id"]
            special_home = results_q.get_one(conn, run_pk, "special", -1, "return_value")
        assert special_home.strip('"').endswith("home-special")  # ran on the special queue's worker
    finally:
        c.stop()


def test_a_scheduler_killed_while_workers_run_its_attempts_adopts_them_on_restart(tmp_path, pg_url):
    """Celery workers outlive the scheduler: a restarted scheduler follows the attempts
    that are still running instead of running them again."""
    c = CeleryCluster(tmp_path, pg_url)
    started = tmp_path / "started"
    release = tmp_path / "release"
    (c.dags / "long.py").write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            from millstream import dag, task

            @dag(schedule=None)
            def long():
                @task
                def work(i, ti=None):
                    with open({str(started)!r}, "a") as f:
                        f.write(f"{{i}} {{ti.try_number}}\\n")
                    while not Path({str(release)!r}).exists():
                        time.sleep(0.05)
                    return i

                work.expand(i=[0, 1])

            long()
            """
        )
    )
    try:
        c.start(workers=1)
        c.wait_workers(1)
        run_id = c.trigger("long")
        wait_for(lambda: started.exists() and len(started.read_text().splitlines()) == 2, 60, "both attempts")
        os.killpg(c.procs["scheduler"].pid, signal.SIGKILL)
        c.procs["scheduler"].wait(10)
        c.spawn("scheduler", "scheduler")  # same host, old pid dead: adopts at once
        release.write_text("go")
        assert c.wait_run("long", run_id) == "success"
        assert sorted(started.read_text().splitlines()) == ["0 1", "1 1"]  # each ran once
        assert [t["try_number"] for t in c.tis("long", run_id) if t["task_id"] == "work"] == [1, 1]
    finally:
        c.stop()


def test_marking_a_running_task_failed_stops_it_on_its_worker(tmp_path, pg_url):
    from millstream.core.states import TaskState

    c = CeleryCluster(tmp_path, pg_url)
    notes, release = tmp_path / "notes", tmp_path / "release"
    (c.dags / "held.py").write_text(
        textwrap.dedent(
            f"""
            import time
            from datetime import timedelta
            from pathlib import Path
            from millstream import BaseOperator, dag

            class Hold(BaseOperator):
                def execute(self, context):
                    with open({str(notes)!r}, "a") as f:
                        f.write(f"started-{{self.task_id}}\\n")
                    deadline = time.monotonic() + 60
                    while not Path({str(release)!r}).exists() and time.monotonic() < deadline:
                        time.sleep(0.05)
                    with open({str(notes)!r}, "a") as f:
                        f.write(f"ended-{{self.task_id}}\\n")

                def on_kill(self):
                    with open({str(notes)!r}, "a") as f:
                        f.write(f"killed-{{self.task_id}}\\n")

            @dag(schedule=None)
            def held():
                Hold(task_id="hold")

            @dag(schedule=None)
            def slow():
                Hold(task_id="slow", execution_timeout=timedelta(seconds=1))

            held()
            slow()
            """
        )
    )
    try:
        c.start(workers=1)
        c.wait_workers(1)
        run_id = c.trigger("held")
        wait_for(lambda: notes.exists() and "started-hold" in notes.read_text(), 60, "the attempt to start")
        control.mark_task_instances(c.store, "held", run_id, "hold", TaskState.FAILED)
        notify(tmp_path / "home-scheduler")
        assert c.wait_run("held", run_id) == "failed"
        wait_for(
            lambda: "stopping held/" in (tmp_path / "scheduler.log").read_text(),
            30,
            "the scheduler to revoke it",
        )

        wait_for(
            lambda: "Terminating millstream-" in (tmp_path / "worker0.log").read_text(),
            30,
            "the worker to stop it",
        )
        wait_for(lambda: "killed-hold" in notes.read_text(), 30, "its on_kill")
        # Celery's soft time limit (execution_timeout) calls on_kill too.
        slow_run = c.trigger("slow")
        assert c.wait_run("slow", slow_run) == "failed"
        wait_for(lambda: "killed-slow" in notes.read_text(), 30, "on_kill of the timed-out attempt")
        release.write_text("go")  # had the attempt survived, it would now write "ended"
        c.trigger("held", run_id="after")  # a later attempt on the same worker shows it is alive
        assert c.wait_run("held", "after") == "success"
        assert notes.read_text().split() == [
            "started-hold",
            "killed-hold",
            "started-slow",
            "killed-slow",
            "started-hold",
            "ended-hold",
        ]
    finally:
        c.stop()


def test_rabbitmq_as_the_broker(tmp_path, pg_url):
    """Without Redis there is no wake-up channel: the scheduler polls the reports."""
    c = CeleryCluster(tmp_path, pg_url, broker=AMQP_URL)
    (c.dags / "process_daily_files.py").write_text((EXAMPLES / "process_daily_files.py").read_text())
    try:
        c.start(workers=1)
        c.wait_workers(1)
        run_id = c.trigger("process_daily_files")
        assert c.wait_run("process_daily_files", run_id) == "success"
    finally:
        c.stop()
