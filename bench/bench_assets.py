"""Asset-driven scheduling (issue: assets).

1 000 asset events fanned into a DAG scheduled on ``a & b``, through `millstream
standalone` (scheduler + local executor, SQLite file). Latency is measured per created
run: the run's ``queued_at`` minus the timestamp of the newest event it carries (the one
that completed the condition), both written by the store on one machine's clock.
Target: median <= 200 ms.

- one pair at a time (emit ``a``, emit ``b``, wait for the run): the latency a lone
  event sees;
- 1 000 events emitted back to back from outside (as `millstream assets emit` and the
  API do): throughput, and latency under load;
- 1 000 events emitted by a mapped producer task (500 instances with ``outlets=[a]``,
  500 with ``outlets=[b]``): the in-scheduler path, event recorded with the task's success.
"""

from __future__ import annotations

import statistics
import time

from common import SchedulerProcess, report, wait_for

from millstream import control
from millstream.scheduler import asset_runs
from millstream.scheduler.wakeup import notify
from millstream.store import assets as assets_q
from millstream.store import runs as runs_q

DAGS = """
from millstream import Asset, AssetTrigger, dag, task

a, b = Asset("a"), Asset("b")

@dag(schedule=a & b, max_active_runs=64)
def consumer():
    @task
    def noop():
        pass
    noop()

@dag(schedule=AssetTrigger(a & b, policy="each_event"), max_active_runs=64)
def consumer_each():
    @task
    def noop():
        pass
    noop()

@dag(schedule=None)
def producer():
    @task(outlets=[a])
    def make_a(i):
        pass

    @task(outlets=[b])
    def make_b(i):
        pass

    make_a.expand(i=list(range(500)))
    make_b.expand(i=list(range(500)))

consumer(); consumer_each(); producer()
"""


def run_latencies(sp: SchedulerProcess, after_pk: int, dag_id: str = "consumer") -> list[float]:
    """Seconds from the completing event to the run, for runs with pk > after_pk."""
    out = []
    with sp.store.read() as conn:  # type: ignore[union-attr]
        for run in runs_q.list_runs(conn, dag_id, limit=100_000):
            if run["id"] <= after_pk:
                continue
            events = assets_q.run_events(conn, run["id"])
            out.append((run["queued_at"] - max(e["timestamp"] for e in events)).total_seconds())
    return out


def consumer_runs(sp: SchedulerProcess) -> list[int]:
    with sp.store.read() as conn:  # type: ignore[union-attr]
        return [
            r["id"] for d in ("consumer", "consumer_each") for r in runs_q.list_runs(conn, d, limit=100_000)
        ]


def settled(sp: SchedulerProcess) -> bool:
    """No queued events meet the condition any more (events of one asset still waiting for
    a partner legitimately stay queued)."""
    with sp.store.read() as conn:  # type: ignore[union-attr]
        return not asset_runs.has_work(conn)


def emit(sp: SchedulerProcess, name: str) -> None:
    control.emit_asset_event(sp.store, name)  # type: ignore[arg-type]
    notify(sp.home)


def main() -> None:
    print("Assets")
    sp = SchedulerProcess({"assets.py": DAGS}, {"MILLSTREAM_PAUSED_ON_CREATION": "false"})
    try:
        sp.start()
        sp.wait_parsed("consumer")
        sp.wait_parsed("producer")

        # 1. One pair at a time.
        for _ in range(50):
            before = len(consumer_runs(sp))
            emit(sp, "a")
            emit(sp, "b")
            wait_for(lambda: len(consumer_runs(sp)) > before, 30, "the run", 0.002)  # noqa: B023
        lone = run_latencies(sp, 0)
        lone += run_latencies(sp, 0, "consumer_each")

        # 2. 1 000 external events back to back.
        last_pk = max(consumer_runs(sp))
        t0 = time.perf_counter()
        for i in range(1000):
            emit(sp, "a" if i % 2 == 0 else "b")
        emitted = time.perf_counter() - t0
        wait_for(lambda: settled(sp), 120, "every event to be consumed", 0.01)
        external_wall = time.perf_counter() - t0
        loaded = run_latencies(sp, last_pk)
        loaded_each = run_latencies(sp, last_pk, "consumer_each")

        # 3. 1 000 events from a mapped producer's successes.
        last_pk = max(consumer_runs(sp))
        t0 = time.perf_counter()
        run_id = sp.trigger("producer")
        assert sp.wait_run("producer", run_id)["state"] == "success"
        wait_for(lambda: settled(sp), 120, "every producer event to be consumed", 0.01)
        producer_wall = time.perf_counter() - t0
        produced = run_latencies(sp, last_pk)
        produced_each = run_latencies(sp, last_pk, "consumer_each")
    finally:
        sp.stop()

    ms = 1000.0
    report("assets a & b, one pair at a time: event to run, median", statistics.median(lone) * ms, "ms", 200)
    report("assets a & b, one pair at a time: event to run, max", max(lone) * ms, "ms", None)
    report("assets 1000 external events: event to run, median", statistics.median(loaded) * ms, "ms", 200)
    report(
        f"assets 1000 external events: emit {emitted:.2f} s, to all consumed",
        1000 / external_wall,
        "ev/s",
        None,
        lower_is_better=False,
    )
    report(
        f"assets 1000 external events, each_event: median ({len(loaded_each)} runs)",
        statistics.median(loaded_each) * ms,
        "ms",
        200,
    )
    report(
        f"assets 1000 external events: batch runs created ({len(loaded)})", len(loaded), "runs", None, False
    )
    report(
        "assets 1000 task-emitted events: event to run, median", statistics.median(produced) * ms, "ms", 200
    )
    report(
        f"assets 1000 task-emitted events, each_event: median ({len(produced_each)} runs)",
        statistics.median(produced_each) * ms,
        "ms",
        200,
    )
    report(
        f"assets mapped producer (1000 TIs) to all events consumed ({len(produced)} batch runs)",
        producer_wall,
        "s",
        None,
    )


if __name__ == "__main__":
    main()
