"""Airflow 3.3's asset and backfill endpoints on /api/v2: shapes, filters, the runs they
cause, and Airflow's error answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow_client.client import models

from millstream import control
from millstream.store import runs as runs_q
from tests.api_v2.conftest import V2
from tests.integration.conftest import wait_for

A = "/api/v2"


def ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json()


def error(response, status: int, detail: str | None = None):
    assert response.status_code == status, response.text
    body = response.json()
    if detail is not None:
        assert body == {"detail": detail}, body
    return body["detail"]


def orders(v2: V2) -> dict:
    return next(a for a in ok(v2.admin.get(f"{A}/assets"))["assets"] if a["name"] == "orders")


def runs_of(v2: V2, dag_id: str) -> list:
    with v2.base.harness.store.read() as conn:
        return list(runs_q.list_runs(conn, dag_id, limit=1000))


# -- assets ----------------------------------------------------------------------------------


def test_assets_list_and_one_in_airflow_shape(v2: V2):
    body = ok(v2.viewer.get(f"{A}/assets"))
    assert body["total_entries"] == len(body["assets"]) >= 1
    a = orders(v2)
    assert set(a) == {
        "id", "name", "uri", "group", "extra", "created_at", "updated_at", "scheduled_dags",
        "producing_tasks", "consuming_tasks", "aliases", "watchers", "last_asset_event",
    }  # fmt: skip
    assert (a["uri"], a["group"], a["aliases"], a["watchers"]) == ("orders", "asset", [], [])
    assert [d["dag_id"] for d in a["scheduled_dags"]] == ["use_orders"]
    assert [(t["dag_id"], t["task_id"]) for t in a["producing_tasks"]] == [("make_orders", "write")]
    assert a["consuming_tasks"] == [] and a["created_at"].endswith("Z")
    assert ok(v2.viewer.get(f"{A}/assets/{a['id']}")) == a
    assert models.AssetCollectionResponse.from_dict(body).total_entries == body["total_entries"]

    def names(**params) -> list[str]:
        return [x["name"] for x in ok(v2.viewer.get(f"{A}/assets", params=params))["assets"]]

    assert names(name_pattern="RDER") == ["orders"]
    assert names(name_pattern="o_d%s") == ["orders"]
    assert names(name_pattern="nothing|ord") == ["orders"]
    assert names(name_prefix_pattern="ord") == ["orders"] and names(name_prefix_pattern="rders") == []
    assert names(uri_pattern="orders") == ["orders"]
    assert names(dag_ids="use_orders") == ["orders"] and names(dag_ids=["with_params"]) == []
    assert names(dag_ids="with_params,make_orders") == ["orders"]
    assert names(limit=0) == [] and names(offset=10_000) == []
    everything = names(only_active="false", order_by="-name")
    assert everything == sorted(everything, reverse=True)

    error(v2.viewer.get(f"{A}/assets/999999"), 404, "The Asset with ID: `999999` was not found")
    assert v2.viewer.get(f"{A}/assets/abc").status_code == 422
    error(
        v2.viewer.get(f"{A}/assets", params={"order_by": "extra"}),
        400,
        "Ordering with 'extra' is disallowed or the attribute does not exist on the model",
    )
    error(v2.anon.get(f"{A}/assets"), 401, "Not authenticated")


def test_aliases_are_an_honest_empty_list(v2: V2):
    assert ok(v2.viewer.get(f"{A}/assets/aliases")) == {"asset_aliases": [], "total_entries": 0}
    error(v2.viewer.get(f"{A}/assets/aliases/1"), 404, "The Asset Alias with ID: `1` was not found")


def test_an_event_posted_runs_the_consumer(v2: V2):
    a = orders(v2)
    before = len(runs_of(v2, "use_orders"))
    event = ok(v2.admin.post(f"{A}/assets/events", json={"asset_id": a["id"], "extra": {"rows": 7}}))
    assert event["asset_id"] == a["id"] and (event["name"], event["uri"], event["group"]) == (
        "orders",
        "orders",
        "asset",
    )
    assert event["extra"] == {"rows": 7, "from_rest_api": True}
    assert (event["source_dag_id"], event["source_map_index"], event["partition_key"]) == (None, -1, None)
    assert event["created_dagruns"] == [] and event["timestamp"].endswith("Z")

    runs = wait_for(lambda: len(runs_of(v2, "use_orders")) > before, 30, "a use_orders run")
    assert runs

    def consumed():
        e = ok(v2.viewer.get(f"{A}/assets/events", params={"asset_id": a["id"], "order_by": "-timestamp"}))
        return e["asset_events"][0]["created_dagruns"]

    (run,) = wait_for(consumed, 30, "the event to show its run")
    assert run["dag_id"] == "use_orders" and run["triggering"] is True and run["partition_key"] is None
    models.AssetEventResponse.from_dict(event)
    assert orders(v2)["last_asset_event"]["id"] == event["id"]


def test_posting_an_event_refuses_what_millstream_cannot_do(v2: V2):
    a = orders(v2)
    error(
        v2.admin.post(f"{A}/assets/events", json={"asset_id": 999999}),
        404,
        "Asset with ID: `999999` was not found",
    )
    d = error(
        v2.admin.post(f"{A}/assets/events", json={"asset_id": a["id"], "partition_key": "2025-01-01"}), 400
    )
    assert "partition" in d
    d = error(v2.admin.post(f"{A}/assets/events", json={"asset_id": a["id"], "access_control": {}}), 400)
    assert "multi-team" in d
    bad = v2.admin.post(f"{A}/assets/events", json={"asset_id": a["id"], "typo": 1})
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "extra_forbidden"
    error(v2.viewer.post(f"{A}/assets/events", json={"asset_id": a["id"]}), 403, "Forbidden")


def test_event_filters_and_ordering(v2: V2):
    run_id = v2.base.harness.trigger("make_orders")
    assert v2.base.harness.wait_run("make_orders", run_id) == "success"
    a = orders(v2)
    ok(v2.admin.post(f"{A}/assets/events", json={"asset_id": a["id"]}))

    def events(**params) -> list[dict]:
        return ok(v2.viewer.get(f"{A}/assets/events", params=params))["asset_events"]

    (task_event,) = events(source_dag_id="make_orders")
    assert (task_event["source_task_id"], task_event["source_run_id"]) == ("write", run_id)
    assert task_event["extra"].get("from_rest_api") is None
    assert events(source_task_id="write") == [task_event] == events(source_run_id=run_id)
    assert events(source_dag_id="nope") == []
    assert task_event in events(source_map_index=-1)
    stamps = [e["timestamp"] for e in events()]
    assert stamps == sorted(stamps) and len(stamps) >= 2
    assert [e["timestamp"] for e in events(order_by="-timestamp")] == stamps[::-1]
    ts = task_event["timestamp"]
    assert [e["id"] for e in events(timestamp_gte=ts, timestamp_lte=ts)] == [task_event["id"]]
    assert all(e["timestamp"] > ts for e in events(timestamp_gt=ts))
    assert len(events(name_pattern="orders")) == len(stamps) and events(name_pattern="zzz") == []
    assert len(events(limit=1)) == 1
    body = ok(v2.viewer.get(f"{A}/assets/events", params={"limit": 1}))
    assert body["total_entries"] == len(stamps)
    error(
        v2.viewer.get(f"{A}/assets/events", params={"order_by": "id"}),
        400,
        "Ordering with 'id' is disallowed or the attribute does not exist on the model",
    )


def test_queued_events_of_a_paused_consumer_can_be_read_and_dropped(v2: V2):
    a = orders(v2)
    store = v2.base.harness.store
    control.set_paused(store, "use_orders", True)
    try:
        ok(v2.admin.post(f"{A}/assets/events", json={"asset_id": a["id"]}))
        (q,) = ok(v2.viewer.get(f"{A}/dags/use_orders/assets/queuedEvents"))["queued_events"]
        assert (q["dag_id"], q["asset_id"], q["dag_display_name"]) == ("use_orders", a["id"], "use_orders")
        assert ok(v2.viewer.get(f"{A}/assets/{a['id']}/queuedEvents"))["queued_events"] == [q]
        models.QueuedEventResponse.from_dict(q)
        assert ok(v2.viewer.get(f"{A}/dags/use_orders/assets/{a['id']}/queuedEvents")) == q
        old = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        assert (
            ok(v2.viewer.get(f"{A}/assets/{a['id']}/queuedEvents", params={"before": old}))["total_entries"]
            == 0
        )
        error(
            v2.viewer.get(f"{A}/assets/{a['id']}/queuedEvents", params={"before": "soon"}),
            400,
            "Invalid datetime: 'soon'. Please check the date parameter have this value.",
        )
        error(v2.viewer.delete(f"{A}/dags/use_orders/assets/queuedEvents"), 403, "Forbidden")
        assert v2.admin.delete(f"{A}/dags/use_orders/assets/{a['id']}/queuedEvents").status_code == 204
        error(
            v2.viewer.get(f"{A}/dags/use_orders/assets/{a['id']}/queuedEvents"),
            404,
            f"Queued event with dag_id: `use_orders` and asset_id: `{a['id']}` was not found",
        )
        error(
            v2.admin.delete(f"{A}/dags/use_orders/assets/queuedEvents"),
            404,
            "Queue event with dag_id: `use_orders` was not found",
        )
        ok(v2.admin.post(f"{A}/assets/events", json={"asset_id": a["id"]}))
        assert v2.admin.delete(f"{A}/assets/{a['id']}/queuedEvents").status_code == 204
        error(
            v2.admin.delete(f"{A}/assets/{a['id']}/queuedEvents"),
            404,
            f"Queue event with asset_id: `{a['id']}` was not found",
        )
        assert ok(v2.viewer.get(f"{A}/dags/use_orders/assets/queuedEvents")) == {
            "queued_events": [],
            "total_entries": 0,
        }
    finally:
        control.set_paused(store, "use_orders", False)


def test_materialize_triggers_the_producer(v2: V2):
    a = orders(v2)
    run = ok(v2.admin.post(f"{A}/assets/{a['id']}/materialize"))
    assert run["dag_id"] == "make_orders" and run["state"] == "queued" and run["dag_versions"]
    assert models.DAGRunResponse.from_dict(run).run_type == "manual" and run["logical_date"] is None
    assert v2.base.harness.wait_run("make_orders", run["dag_run_id"]) == "success"
    error(
        v2.admin.post(f"{A}/assets/{a['id']}/materialize", json={"note": "hi"}),
        400,
    )
    error(v2.admin.post(f"{A}/assets/999999/materialize"), 404, "No Dag materializes asset with ID: 999999")
    error(v2.viewer.post(f"{A}/assets/{a['id']}/materialize"), 403, "Forbidden")


# -- backfills -------------------------------------------------------------------------------

BODY = {"dag_id": "with_params", "from_date": "2025-01-01T00:00:00Z", "to_date": "2025-01-05T00:00:00Z"}


def test_backfill_dry_run_create_pause_unpause_cancel(v2: V2):
    plan = ok(v2.admin.post(f"{A}/backfills/dry_run", json=BODY))
    dates = [f"2025-01-0{d}T00:00:00Z" for d in range(1, 6)]
    assert plan == {
        "backfills": [{"logical_date": d, "partition_key": None, "partition_date": None} for d in dates],
        "total_entries": 5,
    }
    back = ok(v2.admin.post(f"{A}/backfills/dry_run", json={**BODY, "run_backwards": True}))
    assert [b["logical_date"] for b in back["backfills"]] == dates[::-1]

    b = ok(v2.admin.post(f"{A}/backfills", json={**BODY, "max_active_runs": 1, "dag_run_conf": {"n": 4}}))
    assert set(b) == {
        "id", "dag_id", "from_date", "to_date", "dag_run_conf", "is_paused", "reprocess_behavior",
        "max_active_runs", "created_at", "completed_at", "updated_at", "dag_display_name",
    }  # fmt: skip
    assert (b["dag_id"], b["dag_display_name"], b["is_paused"], b["completed_at"]) == (
        "with_params",
        "with_params",
        False,
        None,
    )
    assert (b["from_date"], b["reprocess_behavior"], b["max_active_runs"], b["dag_run_conf"]) == (
        dates[0],
        "none",
        1,
        {"n": 4},
    )
    assert ok(v2.viewer.get(f"{A}/backfills/{b['id']}")) == b
    models.BackfillResponse.from_dict(b)
    models.DryRunBackfillCollectionResponse.from_dict(plan)
    error(
        v2.admin.post(f"{A}/backfills", json=BODY),
        409,
        "There is already a running backfill for dag with_params",
    )
    listed = ok(v2.viewer.get(f"{A}/backfills", params={"dag_id": "with_params"}))
    assert listed["total_entries"] == 1 and listed["backfills"][0]["id"] == b["id"]
    assert ok(v2.viewer.get(f"{A}/backfills", params={"dag_id": "nope"})) == {
        "backfills": [],
        "total_entries": 0,
    }

    url = f"{A}/backfills/{b['id']}"
    error(v2.viewer.put(f"{url}/pause"), 403, "Forbidden")
    assert ok(v2.admin.put(f"{url}/pause"))["is_paused"] is True
    assert ok(v2.admin.put(f"{url}/pause"))["is_paused"] is True  # again: no change, as Airflow
    assert ok(v2.admin.put(f"{url}/unpause"))["is_paused"] is False
    cancelled = ok(v2.admin.put(f"{url}/cancel"))
    assert cancelled["is_paused"] is True and cancelled["completed_at"] is not None
    assert cancelled["updated_at"] == cancelled["completed_at"]
    for action in ("pause", "unpause", "cancel"):
        error(v2.admin.put(f"{url}/{action}"), 409, "Backfill is already completed.")
    backfill_runs = [r for r in runs_of(v2, "with_params") if r["backfill_id"] == b["id"]]
    assert len(backfill_runs) == 5 and all(r["conf"] == {"n": 4} for r in backfill_runs)


def test_backfill_errors_are_airflows(v2: V2):
    error(v2.admin.post(f"{A}/backfills", json={**BODY, "dag_id": "nope"}), 404, "Could not find dag nope")
    error(
        v2.admin.post(f"{A}/backfills/dry_run", json={**BODY, "dag_id": "nope"}),
        404,
        "Could not find dag nope",
    )
    error(
        v2.admin.post(f"{A}/backfills/dry_run", json={**BODY, "from_date": "2025-01-06T00:00:00Z"}),
        422,
        "from_date (2025-01-06T00:00:00+00:00) must not be after to_date (2025-01-05T00:00:00+00:00).",
    )
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    error(
        v2.admin.post(f"{A}/backfills/dry_run", json={**BODY, "from_date": future, "to_date": future}),
        422,
        "Backfill cannot be executed for future dates.",
    )
    d = error(v2.admin.post(f"{A}/backfills/dry_run", json={**BODY, "dag_id": "make_orders"}), 422)
    assert "schedule" in d
    d = error(
        v2.admin.post(
            f"{A}/backfills", json={**BODY, "reprocess_behavior": "failed", "run_on_latest_version": True}
        ),
        400,
    )
    assert "run_on_latest_version" in d
    bad = v2.admin.post(f"{A}/backfills/dry_run", json={**BODY, "reprocess_behavior": "all"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "reprocess_behavior"]
    bad = v2.admin.post(f"{A}/backfills/dry_run", json={**BODY, "typo": True})
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "extra_forbidden"
    error(v2.viewer.post(f"{A}/backfills/dry_run", json=BODY), 403, "Forbidden")
    error(v2.viewer.get(f"{A}/backfills/999999"), 404, "Backfill not found")
    error(v2.admin.put(f"{A}/backfills/999999/pause"), 404, "Backfill not found")
    assert v2.viewer.get(f"{A}/backfills/-1").status_code == 422
    missing = v2.viewer.get(f"{A}/backfills")
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["query", "dag_id"]
