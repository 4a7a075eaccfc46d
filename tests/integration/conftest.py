"""The real scheduler with the local executor on a SQLite file, run in a background thread."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from millstream import control
from millstream.executors.local import LocalExecutor
from millstream.scheduler.loop import Scheduler
from millstream.scheduler.parsing import DagFolder
from millstream.store import Store
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    """Wait until ``predicate()`` is truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Harness:
    def __init__(self, home: Path, dags: Path) -> None:
        self.home = home
        self.dags = dags
        self.url = f"sqlite:///{home / 'ms.db'}"
        self.store = Store(self.url)
        self.store.migrate()
        self.scheduler: Scheduler | None = None
        self.thread: threading.Thread | None = None

    def write_dag(self, name: str, source: str) -> Path:
        path = self.dags / name
        path.write_text(textwrap.dedent(source))
        return path

    def start(
        self,
        *,
        parallelism: int = 2,
        timeout: float = 5.0,
        lease_timeout: float = 30.0,
        triggerer_capacity: int = 10_000,
        heartbeat_timeout: float = 30.0,
    ) -> Scheduler:
        self.scheduler = Scheduler(
            self.store,
            LocalExecutor(self.url, parallelism, lease_timeout=lease_timeout),
            logs_folder=str(self.home / "logs"),
            dag_folder=DagFolder(self.dags, timeout),
            poll_interval=0.1,
            dag_refresh_interval=0.5,
            paused_on_creation=False,
            triggerer_capacity=triggerer_capacity,
            heartbeat_timeout=heartbeat_timeout,
        )
        self.thread = threading.Thread(target=self.scheduler.run_forever, daemon=True)
        self.thread.start()
        return self.scheduler

    def stop(self) -> None:
        if self.scheduler and self.thread:
            self.scheduler.stop()
            self.thread.join(30)
            assert not self.thread.is_alive(), "scheduler did not stop"
        self.store.dispose()

    def wait_parsed(self, dag_id: str, timeout: float = 30.0) -> None:
        from millstream.store import dags as dags_q

        def parsed() -> bool:
            with self.store.read() as conn:
                return any(r["dag_id"] == dag_id for r in dags_q.list_dags(conn))

        wait_for(parsed, timeout, f"DAG {dag_id} to be parsed")

    def trigger(self, dag_id: str, **kw: object) -> str:
        self.wait_parsed(dag_id)
        run_id = control.trigger(self.store, dag_id, **kw)  # type: ignore[arg-type]
        if self.scheduler:
            self.scheduler.nudge()
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        with self.store.read() as conn:
            return str(runs_q.get_run(conn, dag_id, run_id)["state"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 60.0) -> str:
        wait_for(
            lambda: self.run_state(dag_id, run_id) in ("success", "failed"),
            timeout,
            f"run {run_id} to finish",
        )
        return self.run_state(dag_id, run_id)

    def tis(self, dag_id: str, run_id: str) -> dict[str, dict]:
        with self.store.read() as conn:
            run = runs_q.get_run(conn, dag_id, run_id)
            rows = ti_q.list_for_run(conn, run["id"])
        return {
            (r["task_id"] if r["map_index"] < 0 else f"{r['task_id']}[{r['map_index']}]"): dict(r)
            for r in rows
        }


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    dags = tmp_path / "dags"
    dags.mkdir()
    h = Harness(tmp_path, dags)
    yield h
    h.stop()
