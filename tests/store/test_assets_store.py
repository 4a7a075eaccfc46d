"""The asset queries on every backend: registry, events, queues, consumption, watchers."""

from datetime import UTC, datetime, timedelta

import pytest

from millstream.core.assets import QueuedEvent
from millstream.core.model import DagSpec, TaskSpec
from millstream.errors import NotFoundError
from millstream.scheduler.asset_runs import create_asset_triggered, has_work
from millstream.store import assets as assets_q
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def consumer(dag_id, condition, policy="batch"):
    return DagSpec(
        dag_id=dag_id,
        tasks=(TaskSpec("t"),),
        asset_trigger={"condition": condition, "policy": policy},
        assets=({"name": "a", "uri": "s3://x/a", "group": "asset", "extra": {}, "watchers": []},),
    )


def producer():
    return DagSpec(dag_id="prod", tasks=(TaskSpec("make", outlets=("asset:a", "alias:al")),))


def test_events_queue_for_consumers_and_are_consumed_once(store):
    with store.begin() as conn:
        dags_q.sync_parsed(
            conn,
            [
                producer(),
                consumer("both", {"all": [{"asset": "a"}, {"asset": "b"}]}),
                consumer("any", {"asset": "a"}),
            ],
            now=T0,
            paused_on_create=False,
        )
        assert assets_q.get_asset(conn, "a")["uri"] == "s3://x/a"
        assert assets_q.get_asset(conn, "s3://x/a")["name"] == "a"  # found by uri too
        e1 = assets_q.record_event(conn, asset_name="a", now=T0, extra={"n": 1})
        e2 = assets_q.record_event(conn, asset_name="a", now=T0 + timedelta(seconds=1))
        assert sorted(assets_q.consumers_with_queue(conn)) == ["any", "both"]
        assert has_work(conn)
        created = create_asset_triggered(conn, T0 + timedelta(seconds=2))
        assert [(r.dag_id, r.event_ids) for r in created] == [("any", (e1, e2))]
        assert not has_work(conn)  # "both" waits for b
        assert [r["event_id"] for r in assets_q.queued(conn, "both")] == [e1, e2]
        run = runs_q.get_run(conn, "any", created[0].run_id)
        assert run["run_type"] == "asset_triggered"
        assert (run["data_interval_start"], run["data_interval_end"]) == (T0, T0 + timedelta(seconds=1))
        assert [e["extra"] for e in assets_q.run_events(conn, run["id"])] == [{"n": 1}, {}]

        e3 = assets_q.record_event(conn, asset_name="b", now=T0 + timedelta(seconds=3))
        created = create_asset_triggered(conn, T0 + timedelta(seconds=4))
        assert [(r.dag_id, r.event_ids) for r in created] == [("both", (e1, e2, e3))]
        assert assets_q.consumers_with_queue(conn) == []
        assert assets_q.count_events(conn, "a") == 2


def test_alias_resolution_queues_alias_consumers(store):
    with store.begin() as conn:
        dags_q.sync_parsed(
            conn, [producer(), consumer("on_alias", {"alias": "al"})], now=T0, paused_on_create=False
        )
        e1 = assets_q.record_event(conn, asset_name="s3://new/x", now=T0, aliases=["al"])
        assert [(r["event_id"], r["key"]) for r in assets_q.queued(conn, "on_alias")] == [(e1, "alias:al")]
        e2 = assets_q.record_event(conn, asset_name="s3://new/x", now=T0)  # direct, after resolution
        assert [r["event_id"] for r in assets_q.queued(conn, "on_alias")] == [e1, e2]
        assert assets_q.list_aliases(conn) == [{"name": "al", "assets": ["s3://new/x"]}]


def test_paused_consumers_keep_their_queue_and_gone_ones_drop_it(store):
    with store.begin() as conn:
        dags_q.sync_parsed(conn, [consumer("c", {"asset": "a"})], now=T0, paused_on_create=True)
        assets_q.record_event(conn, asset_name="a", now=T0)
        assert not has_work(conn)
        assert len(assets_q.queued(conn, "c")) == 1
        dags_q.deactivate_missing(conn, "", [])  # the file no longer defines it
        assert has_work(conn)
        assert create_asset_triggered(conn, T0) == []
        assert assets_q.queued(conn, "c") == []
        # A DAG that no longer consumes gets no new rows either.
        assets_q.record_event(conn, asset_name="a", now=T0)
        assert assets_q.consumers_with_queue(conn) == []


def test_consume_is_exact(store):
    with store.begin() as conn:
        dags_q.sync_parsed(conn, [consumer("c", {"asset": "a"}, "each_event")], now=T0, paused_on_create=True)
        ids = [assets_q.record_event(conn, asset_name="a", now=T0) for _ in range(3)]
        assets_q.consume(conn, "c", [QueuedEvent(ids[1], "asset:a")])
        assert [r["event_id"] for r in assets_q.queued(conn, "c")] == [ids[0], ids[2]]


def test_watcher_files_are_claimed_once(store):
    with store.begin() as conn:
        assert assets_q.mark_reported(conn, "w1", "/in/a.csv", 10, 1.5, T0)
        assert not assets_q.mark_reported(conn, "w1", "/in/a.csv", 10, 1.5, T0)
        assert assets_q.mark_reported(conn, "w2", "/in/a.csv", 10, 1.5, T0)
        assert assets_q.reported_paths(conn, "w1") == {"/in/a.csv"}


def test_unknown_asset(store):
    with store.read() as conn, pytest.raises(NotFoundError, match="millstream assets list"):
        assets_q.get_asset(conn, "nope")


def test_a_second_dag_giving_an_asset_another_uri_is_an_import_error(store):
    from millstream.scheduler.dagsync import record_parsed
    from millstream.scheduler.parsing import Parsed

    def using(dag_id, uri):
        return DagSpec(
            dag_id=dag_id,
            tasks=(TaskSpec("t", outlets=("asset:orders",)),),
            assets=({"name": "orders", "uri": uri, "group": "asset", "extra": {}, "watchers": []},),
        )

    record_parsed(
        store, [Parsed("/dags/one.py", [using("one", "s3://lake/orders")])], paused_on_creation=False
    )
    record_parsed(store, [Parsed("/dags/two.py", [using("two", "orders")])], paused_on_creation=False)
    with store.read() as conn:
        (err,) = dags_q.list_import_errors(conn)
        assert err["filename"] == "/dags/two.py"
        assert (
            "asset 'orders' with uri 'orders', but one use(s) it with uri 's3://lake/orders'"
            in err["message"]
        )
        assert assets_q.get_asset(conn, "orders")["uri"] == "s3://lake/orders"
        assert [r["dag_id"] for r in dags_q.list_dags(conn)] == ["one"]
    # The DAG that owns the name may still change its uri.
    record_parsed(
        store, [Parsed("/dags/one.py", [using("one", "s3://lake/v2/orders")])], paused_on_creation=False
    )
    with store.read() as conn:
        assert assets_q.get_asset(conn, "orders")["uri"] == "s3://lake/v2/orders"
