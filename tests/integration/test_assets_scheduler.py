"""Asset-driven scheduling through the real scheduler and local workers."""

import json
import textwrap
from datetime import timedelta

from millstream import control
from millstream.store import assets as assets_q
from millstream.store import results as results_q
from millstream.store import runs as runs_q

from .conftest import wait_for

PRODUCER_CONSUMER = """
import json
import textwrap
from pathlib import Path
from millstream import Asset, Metadata, dag, task

OUT = Path({out!r})
a = Asset("a", uri="s3://lake/a.parquet", extra={{"owner": "team-a"}})
b = Asset("b")

@dag(schedule=None)
def producer():
    @task(outlets=[a])
    def make_a(outlet_events=None):
        outlet_events[a].extra = {{"rows": 10}}

    @task(outlets=[b])
    def make_b():
        yield Metadata(b, {{"rows": 20}})
        return "done"

    make_a() >> make_b()

producer()

@dag(schedule=(a & b))
def consumer():
    @task
    def read(triggering_asset_events=None, dag_run=None):
        seen = {{
            asset.name: [
                {{"extra": e.extra, "source_dag_id": e.source_dag_id, "source_task_id": e.source_task_id}}
                for e in events
            ]
            for asset, events in triggering_asset_events.items()
        }}
        with OUT.open("a") as f:
            f.write(json.dumps({{"run_type": dag_run.run_type, "seen": seen}}) + "\\n")

    read()

consumer()
"""


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def runs_of(harness, dag_id):
    with harness.store.read() as conn:
        return list(reversed(runs_q.list_runs(conn, dag_id, limit=1000)))


def test_producer_success_triggers_consumer_with_metadata(harness, tmp_path):
    out = tmp_path / "out.jsonl"
    harness.write_dag("assets.py", PRODUCER_CONSUMER.format(out=str(out)))
    harness.start()
    harness.wait_parsed("consumer")
    run_id = harness.trigger("producer")
    assert harness.wait_run("producer", run_id) == "success"
    wait_for(lambda: len(lines(out)) == 1, 30, "the consumer to run")
    (record,) = lines(out)
    assert record["run_type"] == "asset_triggered"
    assert record["seen"] == {
        "a": [{"extra": {"rows": 10}, "source_dag_id": "producer", "source_task_id": "make_a"}],
        "b": [{"extra": {"rows": 20}, "source_dag_id": "producer", "source_task_id": "make_b"}],
    }
    # The producer's return value survives the Metadata it yielded.
    with harness.store.read() as conn:
        run_pk = runs_q.get_run(conn, "producer", run_id)["id"]
        assert results_q.get_one(conn, run_pk, "make_b", -1, "return_value") == '"done"'
        assert assets_q.get_asset(conn, "a")["uri"] == "s3://lake/a.parquet"
        assert assets_q.get_asset(conn, "a")["extra"] == {"owner": "team-a"}


CONSUMERS = """
import json
import textwrap
from pathlib import Path
from millstream import Asset, AssetTrigger, dag, task

OUT = Path({out!r})
a, b = Asset("a"), Asset("b")

def recorder(dag_id):
    @task
    def record(triggering_asset_events=None, data_interval_start=None, data_interval_end=None):
        events = sorted(
            (e.id, asset.name, e.extra.get("n")) for asset, evs in triggering_asset_events.items() for e in evs
        )
        with OUT.open("a") as f:
            f.write(json.dumps({{"dag": dag_id, "events": events}}) + "\\n")
    return record

@dag(schedule=[a, b])
def batch():
    recorder("batch")()

@dag(schedule=AssetTrigger(a & b, policy="each_event"))
def each_and():
    recorder("each_and")()

@dag(schedule=AssetTrigger(a | b, policy="each_event"), max_active_runs=1)  # one at a time, in order
def each_or():
    recorder("each_or")()

@dag(schedule=AssetTrigger(a & b, policy="latest_only"))
def latest():
    recorder("latest")()

batch(); each_and(); each_or(); latest()
"""


def by_dag(out):
    got = {}
    for rec in lines(out):
        got.setdefault(rec["dag"], []).append([(name, n) for _, name, n in rec["events"]])
    return got


def emit(harness, name, n):
    control.emit_asset_event(harness.store, name, extra={"n": n})
    harness.scheduler.nudge()


def test_event_policies_and_restart_between_events(harness, tmp_path):
    """Two ``a`` events, a scheduler restart, then ``b``: batch gives one run carrying both
    ``a`` events; each_event pairs in order; latest_only carries only the newest; nothing
    is lost or counted twice across the restart."""
    out = tmp_path / "out.jsonl"
    harness.write_dag("consumers.py", CONSUMERS.format(out=str(out)))
    harness.start()
    harness.wait_parsed("latest")
    emit(harness, "a", 1)
    emit(harness, "a", 2)
    # each_or runs once per event even before b arrives.
    wait_for(lambda: len(by_dag(out).get("each_or", [])) == 2, 30, "each_or runs")
    with harness.store.read() as conn:
        assert {r["key"] for r in assets_q.queued(conn, "batch")} == {"asset:a"}
        assert len(assets_q.queued(conn, "batch")) == 2
    harness.stop()

    harness.store = type(harness.store)(harness.url)
    harness.start()
    emit(harness, "b", 3)
    wait_for(lambda: len(lines(out)) == 2 + 1 + 1 + 1 + 1, 30, "the consumers to run")
    got = by_dag(out)
    assert got["batch"] == [[("a", 1), ("a", 2), ("b", 3)]]
    assert got["each_and"] == [[("a", 1), ("b", 3)]]  # a=2 waits for the next b
    assert got["each_or"] == [[("a", 1)], [("a", 2)], [("b", 3)]]
    assert got["latest"] == [[("a", 2), ("b", 3)]]
    with harness.store.read() as conn:
        assert [r["key"] for r in assets_q.queued(conn, "each_and")] == ["asset:a"]
        assert assets_q.queued(conn, "batch") == []
        assert assets_q.queued(conn, "latest") == []

    emit(harness, "b", 4)
    wait_for(lambda: len(by_dag(out).get("each_and", [])) == 2, 30, "the second each_and run")
    assert by_dag(out)["each_and"][1] == [("a", 2), ("b", 4)]
    # b alone does not meet batch's a & b again.
    assert len(by_dag(out)["batch"]) == 1
    with harness.store.read() as conn:
        assert [r["key"] for r in assets_q.queued(conn, "batch")] == ["asset:b"]


def test_events_emitted_while_the_scheduler_is_down_are_consumed_on_start(harness, tmp_path):
    out = tmp_path / "out.jsonl"
    harness.write_dag("consumers.py", CONSUMERS.format(out=str(out)))
    harness.start()
    harness.wait_parsed("latest")
    harness.stop()
    harness.store = type(harness.store)(harness.url)
    control.emit_asset_event(harness.store, "a", extra={"n": 1})
    control.emit_asset_event(harness.store, "b", extra={"n": 2})
    harness.start()
    wait_for(lambda: "batch" in by_dag(out), 30, "the batch consumer")
    assert by_dag(out)["batch"] == [[("a", 1), ("b", 2)]]


ALIAS = """
import json
import textwrap
from pathlib import Path
from millstream import Asset, AssetAlias, Metadata, dag, task

OUT = Path({out!r})
alias = AssetAlias("daily-export")

@dag(schedule=None)
def exporter():
    @task(outlets=[alias])
    def export(outlet_events=None, params=None):
        outlet_events[alias].add(Asset("s3://exports/orders.csv"), extra={{"how": "add"}})

    @task(outlets=[alias])
    def export_more():
        yield Metadata(Asset("s3://exports/refunds.csv"), {{"how": "yield"}}, alias=alias)

    @task(inlets=[alias])
    def check(inlet_events=None):
        names = [e.asset.name for e in inlet_events[alias]]
        assert [e.asset.name for e in inlet_events[0]] == names  # by position, as in Airflow
        with OUT.open("a") as f:
            f.write(json.dumps({{"dag": "exporter", "through_alias": names}}) + "\\n")

    export() >> export_more() >> check()

exporter()

def recorder(dag_id):
    @task
    def record(triggering_asset_events=None):
        seen = sorted(
            (asset.name, e.extra["how"], e.source_aliases) for asset, evs in triggering_asset_events.items() for e in evs
        )
        through_alias = [e.asset.name for e in triggering_asset_events[alias]]
        with OUT.open("a") as f:
            f.write(json.dumps({{"dag": dag_id, "seen": seen, "through_alias": through_alias}}) + "\\n")
    return record

@dag(schedule=alias)
def on_alias():
    recorder("on_alias")()

@dag(schedule=Asset("s3://exports/orders.csv"))
def on_orders():
    recorder("on_orders")()

on_alias(); on_orders()
"""


def test_alias_resolves_at_run_time_for_alias_and_concrete_consumers(harness, tmp_path):
    out = tmp_path / "out.jsonl"
    harness.write_dag("alias.py", ALIAS.format(out=str(out)))
    harness.start()
    harness.wait_parsed("on_orders")
    run_id = harness.trigger("exporter")
    assert harness.wait_run("exporter", run_id) == "success"
    wait_for(lambda: {r["dag"] for r in lines(out)} >= {"on_alias", "on_orders"}, 30, "both consumers")
    recs = {r["dag"]: r for r in lines(out)}
    assert recs["exporter"]["through_alias"] == ["s3://exports/orders.csv", "s3://exports/refunds.csv"]
    assert recs["on_orders"]["seen"] == [["s3://exports/orders.csv", "add", ["daily-export"]]]
    assert recs["on_orders"]["through_alias"] == ["s3://exports/orders.csv"]
    # The alias consumer's run was created once the first event arrived; each event
    # through the alias queues it, so both exports reach it (in one run or two).
    wait_for(
        lambda: sum(len(r["seen"]) for r in lines(out) if r["dag"] == "on_alias") == 2,
        30,
        "both alias events",
    )
    with harness.store.read() as conn:
        aliases = {a["name"]: a["assets"] for a in assets_q.list_aliases(conn)}
    assert aliases == {"daily-export": ["s3://exports/orders.csv", "s3://exports/refunds.csv"]}

    # Once resolved, a direct event on the concrete asset also reaches the alias consumer.
    before = len([r for r in lines(out) if r["dag"] == "on_alias"])
    control.emit_asset_event(harness.store, "s3://exports/refunds.csv", extra={"how": "direct"})
    harness.scheduler.nudge()
    wait_for(lambda: len([r for r in lines(out) if r["dag"] == "on_alias"]) == before + 1, 30, "direct event")


COMBINED = """
import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from millstream import Asset, AssetOrTimeSchedule, asset, dag, task

OUT = Path({out!r})

@asset(schedule=None)
def raw_orders(self, context):
    return {{"asset": self.name, "run_type": context["dag_run"].run_type}}

@dag(
    schedule=AssetOrTimeSchedule(timetable=timedelta(hours=1), assets=raw_orders),
    start_date=datetime.now(timezone.utc) - timedelta(hours=3),
)
def hourly_or_orders():
    @task(inlets=[raw_orders])
    def record(dag_run=None, inlet_events=None):
        events = inlet_events[raw_orders]
        latest = events[-1].source_dag_id if len(events) else None
        with OUT.open("a") as f:
            f.write(json.dumps({{"run_type": dag_run.run_type, "events": len(events), "latest": latest}}) + "\\n")

    record()

hourly_or_orders()
"""


def test_asset_or_time_schedule_and_asset_decorator_and_inlet_events(harness, tmp_path):
    out = tmp_path / "out.jsonl"
    harness.write_dag("combined.py", COMBINED.format(out=str(out)))
    harness.start()
    harness.wait_parsed("hourly_or_orders")
    # The time part: catchup is off, so the latest hour runs now.
    wait_for(lambda: len(lines(out)) == 1, 30, "the scheduled run")
    assert lines(out)[0] == {"run_type": "scheduled", "events": 0, "latest": None}
    # The asset part: the @asset DAG materializes raw_orders, whose event triggers a run.
    run_id = harness.trigger("raw_orders")
    assert harness.wait_run("raw_orders", run_id) == "success"
    wait_for(lambda: len(lines(out)) == 2, 30, "the asset-triggered run")
    assert lines(out)[1] == {"run_type": "asset_triggered", "events": 1, "latest": "raw_orders"}
    with harness.store.read() as conn:
        run = runs_q.get_run(conn, "raw_orders", run_id)
        assert run["state"] == "success"
    assert harness.tis("raw_orders", run_id)["raw_orders"]["state"] == "success"
    runs = runs_of(harness, "hourly_or_orders")
    assert [r["run_type"] for r in runs] == ["scheduled", "asset_triggered"]
    # An asset-triggered run's data interval spans its events.
    assert runs[1]["data_interval_end"] - runs[1]["data_interval_start"] < timedelta(seconds=5)


MAPPED = """
import json
import textwrap
from pathlib import Path
from millstream import Asset, dag, task

OUT = Path({out!r})
part = Asset("part")

@dag(schedule=None)
def mapped_producer():
    @task(outlets=[part])
    def write(i, outlet_events=None):
        outlet_events[part].extra = {{"i": i}}

    write.expand(i=[0, 1, 2])

mapped_producer()

@dag(schedule=part)
def parts_consumer():
    @task
    def record(triggering_asset_events=None):
        seen = sorted((e.source_map_index, e.extra["i"]) for e in triggering_asset_events[part])
        with OUT.open("a") as f:
            f.write(json.dumps(seen) + "\\n")
    record()

parts_consumer()
"""


def test_each_mapped_instance_emits_and_a_paused_consumer_keeps_its_events(harness, tmp_path):
    """Airflow 3.3.2 emits one event per mapped instance too, but its consumer run took only
    the first of events that arrived together, and a paused consumer queued nothing. Here
    every queued event reaches the run, and a paused consumer's events wait for it."""
    out = tmp_path / "out.jsonl"
    harness.write_dag("mapped.py", MAPPED.format(out=str(out)))
    harness.start()
    harness.wait_parsed("parts_consumer")
    control.set_paused(harness.store, "parts_consumer", True)
    run_id = harness.trigger("mapped_producer")
    assert harness.wait_run("mapped_producer", run_id) == "success"
    with harness.store.read() as conn:
        assert len(assets_q.queued(conn, "parts_consumer")) == 3
    assert runs_of(harness, "parts_consumer") == []
    control.set_paused(harness.store, "parts_consumer", False)
    harness.scheduler.nudge()
    wait_for(lambda: lines(out), 30, "the consumer run")
    assert lines(out) == [[[0, 0], [1, 1], [2, 2]]]
    assert len(runs_of(harness, "parts_consumer")) == 1


KILL = """
from millstream import Asset, AssetTrigger, dag, task

a, b = Asset("a"), Asset("b")

@dag(schedule=AssetTrigger(a, policy="each_event"), max_active_runs=32)
def one_per_event():
    @task
    def noop():
        pass
    noop()

@dag(schedule=[a, b])
def batched():
    @task
    def noop():
        pass
    noop()

one_per_event(); batched()
"""


def test_scheduler_killed_while_events_stream_in_loses_and_repeats_nothing(tmp_path):
    """SIGKILL the scheduler three times while 300 events arrive: every event ends in
    exactly one run of each consumer that its condition calls for."""
    import os
    import signal
    import subprocess
    import sys

    from millstream.store import Store

    home, dags = tmp_path / "home", tmp_path / "dags"
    dags.mkdir()
    (dags / "kill.py").write_text(textwrap.dedent(KILL))
    env = {
        **os.environ,
        "MILLSTREAM_HOME": str(home),
        "MILLSTREAM_DAGS_FOLDER": str(dags),
        "MILLSTREAM_PAUSED_ON_CREATION": "false",
    }
    cli = [sys.executable, "-m", "millstream.cli"]
    subprocess.run([*cli, "dags", "list"], env=env, check=True, capture_output=True)  # registers the DAGs
    store = Store(f"sqlite:///{home / 'millstream.db'}")

    def start():
        return subprocess.Popen(
            [*cli, "scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def linked(dag_id):
        with store.read() as conn:
            return [
                e["extra"].get("i")
                for r in runs_q.list_runs(conn, dag_id, limit=10_000)
                for e in assets_q.run_events(conn, r["id"])
            ]

    proc = start()
    try:
        for chunk in range(4):
            for i in range(chunk * 75, (chunk + 1) * 75):
                control.emit_asset_event(store, "a", extra={"i": i})
            # Kill while this chunk is being consumed: some of it has runs, maybe not all.
            wait_for(lambda: len(linked("one_per_event")) > chunk * 75, 60, "consumption to start")  # noqa: B023
            if chunk < 3:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                proc = start()
        control.emit_asset_event(store, "b")

        wait_for(lambda: len(linked("one_per_event")) == 300, 120, "every event to get its run")
        wait_for(lambda: linked("batched"), 60, "the batched run")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert sorted(linked("one_per_event")) == list(range(300))  # each exactly once
    with store.read() as conn:
        assert len(runs_q.list_runs(conn, "one_per_event", limit=10_000)) == 300
        assert assets_q.queued(conn, "one_per_event") == []
        assert assets_q.queued(conn, "batched") == []
    batched = linked("batched")
    assert sorted(x for x in batched if x is not None) == list(range(300)) and batched.count(None) == 1
    store.dispose()
