"""Helpers for benchmarks: a scheduler in its own process on a temporary home."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from millstream import control
from millstream.scheduler.wakeup import notify
from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q

RESULTS: list[dict[str, Any]] = []


def report(name: str, value: float, unit: str, target: float | None, lower_is_better: bool = True) -> None:
    ok = None if target is None else (value <= target if lower_is_better else value >= target)
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    tgt = "" if target is None else f"{'<=' if lower_is_better else '>='} {target:g} {unit}"
    RESULTS.append({"name": name, "value": value, "unit": unit, "target": tgt, "verdict": verdict})
    print(f"  {name:<58} {value:>10.3f} {unit:<6} {tgt:<14} {verdict}", flush=True)


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SchedulerProcess:
    """`millstream standalone` (scheduler + local executor, SQLite file) on a fresh home."""

    def __init__(self, dag_sources: dict[str, str], extra_env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="millstream-bench-"))
        self.home = self.tmp / "home"
        self.dags = self.tmp / "dags"
        self.dags.mkdir(parents=True)
        self.port = _free_port()
        for name, src in dag_sources.items():
            (self.dags / name).write_text(textwrap.dedent(src))
        self.env = {
            **os.environ,
            "MILLSTREAM_HOME": str(self.home),
            "MILLSTREAM_DAGS_FOLDER": str(self.dags),
            "MILLSTREAM__API__PORT": str(self.port),  # the API and UI run too, as in `make run`
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.store: Store | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "millstream.cli", "standalone"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        db = self.home / "millstream.db"
        wait_for(db.exists, 30, "the database")
        self.store = Store(f"sqlite:///{db}")

    def wait_parsed(self, dag_id: str, timeout: float = 60) -> None:
        def parsed() -> bool:
            try:
                with self.store.read() as conn:  # type: ignore[union-attr]
                    return any(r["dag_id"] == dag_id for r in dags_q.list_dags(conn))
            except Exception:  # noqa: BLE001 - schema may be mid-migration
                return False

        wait_for(parsed, timeout, f"{dag_id} parsed", 0.05)

    def trigger(self, dag_id: str, **kw: Any) -> str:
        assert self.store is not None
        run_id = control.trigger(self.store, dag_id, **kw)
        notify(self.home)
        return run_id

    def run_row(self, dag_id: str, run_id: str) -> Any:
        assert self.store is not None
        with self.store.read() as conn:
            return runs_q.get_run(conn, dag_id, run_id)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> Any:
        return wait_for(
            lambda: (r := self.run_row(dag_id, run_id))["state"] in ("success", "failed") and r,
            timeout,
            "run end",
            0.002,
        )

    def tis(self, dag_id: str, run_id: str) -> list[Any]:
        assert self.store is not None
        with self.store.read() as conn:
            return ti_q.list_for_run(conn, self.run_row(dag_id, run_id)["id"])

    def pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-s", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def cpu_seconds(self) -> float:
        """User+system CPU time of the scheduler's whole process tree."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (FileNotFoundError, IndexError):
                pass
        return total / tick

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total / 1024

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.store is not None:
            self.store.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)


def seed_source(n: int) -> str:
    return f"""
    from datetime import datetime
    from millstream import dag, task

    @dag(schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False)
    def process_daily_files():
        @task
        def list_files():
            return [f"file_{{i:06d}}.csv" for i in range({n})]

        @task
        def process_file(filename: str):
            print(f"Processing {{filename}}")
            return f"Processed: {{filename}}"

        @task
        def summarize(results: list[str]):
            print(f"Completed {{len(results)}} files")

        files = list_files()
        processed = process_file.expand(filename=files)
        summarize(processed)

    process_daily_files()
    """
