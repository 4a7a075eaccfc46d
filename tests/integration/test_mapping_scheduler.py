"""Mapping through the real scheduler and worker processes: pipelining, limits, pools, clearing."""

import json
import os
from pathlib import Path

from millstream import control
from millstream.store import pools as pools_q

from .conftest import wait_for


def intervals(path: Path) -> list[tuple[float, float]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["start"], r["end"]) for r in rows]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


RECORDING_TASK = """
import json, os, time
from millstream import dag, task

LOG = {log!r}

def record(start, **extra):
    with open(LOG, "a") as f:
        f.write(json.dumps({{"start": start, "end": time.time(), "pid": os.getpid(), **extra}}) + "\\n")
"""


def test_instance_i_downstream_runs_before_the_upstream_map_has_finished(harness, tmp_path):
    flag = tmp_path / "b0-started"
    harness.write_dag(
        "pipe.py",
        f"""
        import time
        from pathlib import Path
        from millstream import dag, task

        FLAG = Path({str(flag)!r})

        @dag
        def pipe():
            @task
            def items():
                return [0, 1]

            @task
            def first(i):
                if i == 1:
                    # Waits for the downstream instance 0, which runs only if it does not wait
                    # for this whole map to finish.
                    deadline = time.monotonic() + 30
                    while not FLAG.exists() and time.monotonic() < deadline:
                        time.sleep(0.02)
                    return FLAG.exists()
                return True

            @task
            def second(ok):
                if not Path(FLAG).exists():
                    FLAG.touch()
                return ok

            @task
            def check(values):
                assert list(values) == [True, True], list(values)

            check(second.expand(ok=first.expand(i=items())))

        pipe()
        """,
    )
    harness.start(parallelism=2)
    run_id = harness.trigger("pipe")
    assert harness.wait_run("pipe", run_id, timeout=90) == "success"


def test_max_active_tis_per_dagrun_is_never_exceeded(harness, tmp_path):
    log = tmp_path / "spans.jsonl"
    harness.write_dag(
        "limited.py",
        RECORDING_TASK.format(log=str(log))
        + """
@dag
def limited():
    @task(max_active_tis_per_dagrun=2)
    def work(i):
        start = time.time()
        time.sleep(0.2)
        record(start, i=i)

    work.expand(i=list(range(8)))

limited()
""",
    )
    harness.start(parallelism=4)
    run_id = harness.trigger("limited")
    assert harness.wait_run("limited", run_id) == "success"
    spans = intervals(log)
    assert len(spans) == 8
    assert max_overlap(spans) <= 2


def test_a_pool_limits_tasks_across_dags_and_a_missing_pool_waits_with_a_reason(harness, tmp_path):
    log = tmp_path / "spans.jsonl"
    for name in ("one", "two"):
        harness.write_dag(
            f"{name}.py",
            RECORDING_TASK.format(log=str(log))
            + f"""
@dag
def pooled_{name}():
    @task(pool="db")
    def query(i):
        start = time.time()
        time.sleep(0.1)
        record(start, dag="{name}", i=i)

    query.expand(i=[1, 2, 3])

pooled_{name}()
""",
        )
    harness.start(parallelism=4)
    run1 = harness.trigger("pooled_one")
    # No pool "db" yet: the instances wait, and say why.
    wait_for(
        lambda: any(
            "pool 'db' does not exist" in (t["state_reason"] or "")
            for t in harness.tis("pooled_one", run1).values()
        ),
        30,
        "the missing-pool reason",
    )
    assert not log.exists()
    with harness.store.begin() as conn:
        pools_q.set_pool(conn, "db", 1)
    run2 = harness.trigger("pooled_two")
    assert harness.wait_run("pooled_one", run1) == "success"
    assert harness.wait_run("pooled_two", run2) == "success"
    spans = intervals(log)
    assert len(spans) == 6 and max_overlap(spans) == 1


def test_clearing_one_map_index_reruns_it_and_what_depends_on_it_only(harness, tmp_path):
    log = tmp_path / "calls.jsonl"
    harness.write_dag(
        "clearable.py",
        RECORDING_TASK.format(log=str(log))
        + """
@dag
def clearable():
    @task
    def items():
        record(time.time(), task="items")
        return ["a", "b", "c"]

    @task(map_index_template="{{ name }}")
    def each(name):
        record(time.time(), task="each", name=name)
        return name.upper()

    @task
    def join(values):
        record(time.time(), task="join")
        return "".join(values)

    join(each.expand(name=items()))

clearable()
""",
    )
    harness.start()
    run_id = harness.trigger("clearable", run_id="r1")
    assert harness.wait_run("clearable", run_id) == "success"
    cleared = control.clear(
        harness.store, "clearable", run_id="r1", task_regex="^each$", map_index=1, downstream=True
    )
    assert sorted((c.task_id, c.map_index) for c in cleared) == [("each", 1), ("join", -1)]
    harness.scheduler.nudge()
    wait_for(lambda: harness.tis("clearable", "r1")["join"]["try_number"] == 2, 60, "join to run again")
    assert harness.wait_run("clearable", "r1") == "success"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    names = [c.get("name") for c in calls if c["task"] == "each"]
    assert sorted(names) == ["a", "b", "b", "c"]
    assert [c["task"] for c in calls].count("items") == 1
    tis = harness.tis("clearable", "r1")
    assert tis["each[1]"]["try_number"] == 2 and tis["each[0]"]["try_number"] == 1
    assert tis["each[1]"]["label"] == "b"


def test_clearing_what_a_task_maps_over_expands_it_again(harness, tmp_path):
    count_file = tmp_path / "n"
    count_file.write_text("3")
    harness.write_dag(
        "regrow.py",
        f"""
        from pathlib import Path
        from millstream import dag, task

        @dag
        def regrow():
            @task
            def items():
                return list(range(int(Path({str(count_file)!r}).read_text())))

            @task
            def each(i):
                return i

            @task
            def total(values):
                return sum(values)

            total(each.expand(i=items()))

        regrow()
        """,
    )
    harness.start()
    run_id = harness.trigger("regrow", run_id="r1")
    assert harness.wait_run("regrow", run_id) == "success"
    assert len([k for k in harness.tis("regrow", "r1") if k.startswith("each[")]) == 3
    count_file.write_text("5")
    control.clear(harness.store, "regrow", run_id="r1", task_regex="^items$", downstream=True)
    harness.scheduler.nudge()
    wait_for(
        lambda: len([k for k in harness.tis("regrow", "r1") if k.startswith("each[")]) == 5,
        60,
        "re-expansion",
    )
    state = harness.wait_run("regrow", "r1")
    assert state == "success", {
        k: (v["state"], v["state_reason"]) for k, v in harness.tis("regrow", "r1").items()
    }


def test_worker_import_is_warm(harness, tmp_path):
    # Many instances, few distinct worker processes: workers are reused, not spawned per task.
    log = tmp_path / "pids.jsonl"
    harness.write_dag(
        "warm.py",
        RECORDING_TASK.format(log=str(log))
        + """
@dag
def warm():
    @task
    def t(i):
        record(time.time(), i=i)

    t.expand(i=list(range(40)))

warm()
""",
    )
    harness.start(parallelism=2)
    run_id = harness.trigger("warm")
    assert harness.wait_run("warm", run_id) == "success"
    pids = {json.loads(line)["pid"] for line in log.read_text().splitlines()}
    assert len(pids) <= 2 and os.getpid() not in pids


def test_max_active_tis_per_dag_holds_across_runs(harness, tmp_path):
    log = tmp_path / "spans.jsonl"
    harness.write_dag(
        "perdag.py",
        RECORDING_TASK.format(log=str(log))
        + """
@dag(max_active_runs=4)
def perdag():
    @task(max_active_tis_per_dag=1)
    def work(i):
        start = time.time()
        time.sleep(0.1)
        record(start, i=i)

    work.expand(i=[1, 2])

perdag()
""",
    )
    harness.start(parallelism=4)
    runs = [harness.trigger("perdag", run_id=f"r{i}") for i in range(3)]
    for r in runs:
        assert harness.wait_run("perdag", r) == "success"
    spans = intervals(log)
    assert len(spans) == 6 and max_overlap(spans) == 1


def test_execution_timeout_applies_per_instance(harness):
    harness.write_dag(
        "slow.py",
        """
        import time
        from datetime import timedelta
        from millstream import dag, task

        @dag
        def slow():
            @task(execution_timeout=timedelta(seconds=1))
            def work(i):
                if i == 1:
                    time.sleep(60)
                return i

            work.expand(i=[0, 1, 2])

        slow()
        """,
    )
    harness.start(parallelism=2)
    run_id = harness.trigger("slow")
    assert harness.wait_run("slow", run_id, timeout=60) == "failed"
    tis = harness.tis("slow", run_id)
    assert [tis[f"work[{i}]"]["state"] for i in range(3)] == ["success", "failed", "success"]
    assert "execution_timeout of 1.0s exceeded" in tis["work[1]"]["state_reason"]
    log = next((harness.home / "logs").rglob("map_index=1/attempt=1.log")).read_text()
    assert "timed out" in log
