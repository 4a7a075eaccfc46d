"""Airflow 3.3.2's DAG run endpoints on Millstream: the shapes, filters, orderings, status
codes and error texts of ``/api/v2/dags/{dag_id}/dagRuns`` (read from Airflow's route code
and datamodels), over a store a real scheduler fills."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from tests.integration.conftest import wait_for

from .conftest import V2

RUNS = "/api/v2/dags/{}/dagRuns"
REF = "process_daily_files"

#: Every field of Airflow 3.3.2's DAGRunResponse.
FIELDS = set(
    "dag_run_id dag_id logical_date queued_at start_date end_date duration data_interval_start "
    "data_interval_end run_after last_scheduling_decision run_type state triggered_by "
    "triggering_user_name conf note dag_versions bundle_version dag_display_name partition_key "
    "partition_date".split()
)


def not_found(dag_id: str, run_id: str) -> dict[str, str]:
    return {"detail": f"The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"}


def trigger(v2: V2, dag_id: str, **body: Any) -> dict[str, Any]:
    body.setdefault("logical_date", None)
    r = v2.admin.post(RUNS.format(dag_id), json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def finish(v2: V2, dag_id: str, run_id: str) -> str:
    """Wait for a run to end; the test's scheduler is told at once (it is not listening on
    the home's wake-up socket the API writes to)."""
    if v2.base.harness.scheduler:
        v2.base.harness.scheduler.nudge()
    return v2.base.harness.wait_run(dag_id, run_id)


def test_trigger_with_conf_then_get_and_list(v2: V2) -> None:
    run = trigger(v2, "with_params", dag_run_id="api_v2_conf", conf={"n": 7})
    assert set(run) == FIELDS
    assert run["dag_run_id"] == "api_v2_conf"
    assert run["conf"] == {"n": 7}
    assert run["run_type"] == "manual"
    assert run["state"] == "queued"
    assert run["logical_date"] is None and run["data_interval_start"] is None  # Airflow 3: none asked
    assert run["note"] is None and run["triggered_by"] is None and run["triggering_user_name"] is None
    assert run["run_after"].endswith("Z") and run["queued_at"].endswith("Z")
    assert run["dag_display_name"] == "with_params"
    (version,) = run["dag_versions"]
    assert version["dag_id"] == "with_params" and version["version_number"] >= 1
    got = v2.viewer.get(RUNS.format("with_params") + "/api_v2_conf")
    assert got.status_code == 200
    assert {
        k: v for k, v in got.json().items() if k not in ("state", "start_date", "end_date", "duration")
    } == {k: v for k, v in run.items() if k not in ("state", "start_date", "end_date", "duration")}
    listed = v2.viewer.get(RUNS.format("with_params")).json()
    assert "api_v2_conf" in [r["dag_run_id"] for r in listed["dag_runs"]]
    # The real Airflow client's models read both bodies.
    from airflow_client.client.models import DAGRunCollectionResponse, DAGRunResponse

    assert DAGRunResponse.from_dict(run).dag_run_id == "api_v2_conf"
    assert DAGRunCollectionResponse.from_dict(listed).total_entries == listed["total_entries"]
    assert listed["total_entries"] == len(listed["dag_runs"])
    assert listed["next_cursor"] is None and listed["total_entries_limit"] is None
    assert finish(v2, "with_params", "api_v2_conf") == "success"


def test_trigger_with_a_logical_date_and_interval(v2: V2) -> None:
    run = trigger(
        v2,
        "templated",
        dag_run_id="api_v2_dated",
        logical_date="2026-03-01T00:00:00Z",
        data_interval_start="2026-02-01T00:00:00Z",
        data_interval_end="2026-03-01T00:00:00Z",
        conf={"region": "us"},
    )
    assert run["logical_date"] == "2026-03-01T00:00:00Z"
    assert (run["data_interval_start"], run["data_interval_end"]) == (
        "2026-02-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
    )
    assert run["dag_display_name"] == "Templated <b>"
    default = trigger(v2, "templated", logical_date="2026-04-02T10:00:00+02:00")
    assert default["dag_run_id"].startswith("manual__")
    assert default["logical_date"] == "2026-04-02T08:00:00Z"
    assert default["data_interval_start"] is not None  # inferred by the DAG's timetable
    past = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    named = trigger(v2, "templated", dag_run_id="", run_after=past.isoformat())
    assert named["dag_run_id"] == f"manual__{past.isoformat()}"  # an empty id is generated from run_after
    assert named["run_after"] == past.isoformat().replace("+00:00", "Z")


def test_trigger_errors_as_airflow(v2: V2) -> None:
    path = RUNS.format("with_params")
    missing = v2.admin.post(RUNS.format("nope"), json={"logical_date": None})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Dag with dag_id: 'nope' not found"})
    # logical_date is required (nullable) and must carry a time zone: FastAPI's 422s.
    assert v2.admin.post(path, json={}).json()["detail"][0]["type"] == "missing"
    naive = v2.admin.post(path, json={"logical_date": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["detail"][0]["type"] == "timezone_aware"
    assert v2.admin.post(path, json={"logical_date": "yesterday"}).status_code == 422
    assert v2.admin.post(path, json={"logical_date": None, "bogus": 1}).status_code == 422
    half = v2.admin.post(path, json={"logical_date": None, "data_interval_start": "2026-01-01T00:00:00Z"})
    assert half.status_code == 422
    assert "Either both data_interval_start and data_interval_end" in half.json()["detail"][0]["msg"]
    assert v2.admin.post(path, json={"logical_date": None, "conf": [1]}).status_code == 422
    reserved = v2.admin.post(path, json={"logical_date": None, "dag_run_id": "scheduled__x"})
    assert reserved.json() == {
        "detail": "A manual DAG run cannot use ID 'scheduled__x' since it is reserved for scheduled runs"
    }
    spaced = v2.admin.post(path, json={"logical_date": None, "dag_run_id": "a b"})
    assert spaced.status_code == 400 and "does not match regex pattern" in spaced.json()["detail"]
    dots = v2.admin.post(path, json={"logical_date": None, "dag_run_id": "a..b"})
    assert dots.json() == {"detail": "The run_id 'a..b' must not contain '..' to prevent path traversal"}
    part = v2.admin.post(path, json={"logical_date": None, "partition_key": "p1"})
    assert part.json() == {
        "detail": "Dag 'with_params' is not a partitioned Dag and does not accept a partition_key."
    }
    note = v2.admin.post(path, json={"logical_date": None, "note": "hello"})
    assert note.status_code == 400 and "note" in note.json()["detail"]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert v2.admin.post(path, json={"logical_date": None, "run_after": later}).status_code == 400
    assert v2.viewer.post(path, json={"logical_date": None}).status_code == 403
    assert v2.anon.post(path, json={"logical_date": None}).status_code == 401


def test_duplicate_run_id_is_a_409(v2: V2) -> None:
    trigger(v2, "make_orders", dag_run_id="api_v2_twice")
    again = v2.admin.post(
        RUNS.format("make_orders"), json={"logical_date": None, "dag_run_id": "api_v2_twice"}
    )
    assert again.status_code == 409
    detail = again.json()["detail"]
    assert detail["reason"] == "Unique constraint violation"
    assert (detail["statement"], detail["orig_error"]) == ("hidden", "hidden")
    assert detail["message"].startswith("Serious error when handling your request.")


def test_not_found_bodies(v2: V2) -> None:
    one = RUNS.format(REF) + "/nope"
    assert v2.viewer.get(one).json() == not_found(REF, "nope")
    assert v2.viewer.get(one).status_code == 404
    assert v2.admin.patch(one, json={"state": "failed"}).json() == not_found(REF, "nope")
    assert v2.admin.delete(one).json() == not_found(REF, "nope")
    assert v2.admin.post(one + "/clear", json={}).json() == not_found(REF, "nope")
    assert v2.viewer.get(one + "/wait", params={"interval": 1}).json() == not_found(REF, "nope")
    assert v2.viewer.get(RUNS.format("ghost")).json() == {"detail": "The Dag with ID: `ghost` was not found"}
    assert v2.viewer.get(RUNS.format("ghost") + "/x").json() == not_found("ghost", "x")


def test_every_dag_with_tilde_and_the_reference_run(v2: V2) -> None:
    body = v2.viewer.get(RUNS.format("~"), params={"limit": 100}).json()
    dags = {r["dag_id"] for r in body["dag_runs"]}
    assert REF in dags and len(dags) > 1
    ref = next(r for r in body["dag_runs"] if r["dag_run_id"] == v2.base.run_id)
    assert ref["state"] == "success" and ref["duration"] is not None and ref["duration"] >= 0
    assert ref["logical_date"] is not None and ref["end_date"].endswith("Z")
    ids = [r["dag_run_id"] for r in body["dag_runs"]]
    pks = [_pk(v2, r["dag_id"], r["dag_run_id"]) for r in body["dag_runs"]]
    assert pks == sorted(pks), ids  # Airflow's default order: id ascending


def _pk(v2: V2, dag_id: str, run_id: str) -> int:
    with v2.base.harness.store.read() as conn:
        return int(runs_q.get_run(conn, dag_id, run_id)["id"])


def test_filters(v2: V2) -> None:
    a = trigger(v2, "make_orders", dag_run_id="api_v2_filter_a", conf={"colour": "red"})
    b = trigger(v2, "make_orders", dag_run_id="api_v2_filter_b", logical_date="2026-05-01T00:00:00Z")
    finish(v2, "make_orders", a["dag_run_id"])
    finish(v2, "make_orders", b["dag_run_id"])
    path = RUNS.format("~")

    def ids(**params: Any) -> list[str]:
        r = v2.viewer.get(path, params=params)
        assert r.status_code == 200, r.text
        return [x["dag_run_id"] for x in r.json()["dag_runs"]]

    assert ids(run_id_pattern="filter_a") == ["api_v2_filter_a"]
    assert ids(run_id_pattern="FILTER_A|filter_b") == ["api_v2_filter_a", "api_v2_filter_b"]
    assert ids(run_id_prefix_pattern="api_v2_filter_") == ["api_v2_filter_a", "api_v2_filter_b"]
    assert ids(run_id_prefix_pattern="api_v2_filter_b") == ["api_v2_filter_b"]
    assert ids(run_id_pattern="api_v2_filter", conf_contains='"colour": "red"') == ["api_v2_filter_a"]
    assert ids(run_id_pattern="api_v2_filter", logical_date_gte="2026-04-30T00:00:00Z") == ["api_v2_filter_b"]
    assert ids(run_id_pattern="api_v2_filter", logical_date_lt="2026-04-30T00:00:00Z") == []  # a: no date
    assert REF not in {r for r in ids(dag_id_pattern="orders")}
    assert set(ids(dag_id_pattern="make_orders|use_orders")) >= {"api_v2_filter_a"}
    assert ids(dag_id_prefix_pattern="make", run_id_pattern="filter") == [
        "api_v2_filter_a",
        "api_v2_filter_b",
    ]
    assert v2.base.run_id in ids(state=["success"], run_type=["manual"], dag_id_pattern="process_daily")
    assert v2.base.run_id not in ids(state=["failed", "queued"], dag_id_pattern="process_daily")
    assert v2.base.run_id in ids(duration_gte=0, dag_id_pattern="process_daily")
    assert v2.base.run_id not in ids(duration_gt=3600, dag_id_pattern="process_daily")
    assert v2.base.run_id in ids(dag_version=[1], dag_id_pattern="process_daily")
    assert ids(bundle_version="v1") == [] and ids(partition_key_pattern="x") == []
    used = ids(consuming_asset_pattern="orders")
    assert used and all(x.startswith("asset_triggered__") for x in used)
    assert ids(consuming_asset_pattern="no-such-asset") == []
    assert ids(run_id_pattern="~", dag_id_pattern="make_orders") == ids(dag_id_pattern="make_orders")
    bad = v2.viewer.get(path, params={"state": "sleeping"})
    assert bad.status_code == 422
    assert bad.json() == {
        "detail": "Invalid value for state. Valid values are queued, running, success, failed"
    }
    assert v2.viewer.get(path, params={"run_type": "weird"}).status_code == 422
    assert v2.viewer.get(path, params={"start_date_gte": "not a date"}).status_code == 422
    for refused in ({"updated_at_gte": "2026-01-01T00:00:00Z"}, {"triggering_user_name_pattern": "root"}):
        r = v2.viewer.get(path, params=refused)
        assert r.status_code == 400 and "cannot be honoured" in r.json()["detail"]
    tilde = v2.viewer.get(path, params={"partition_date_gte": "2026-01-01"})
    assert tilde.json() == {"detail": "partition_date_gte and partition_date_lte require a specific dag_id."}
    one = v2.viewer.get(RUNS.format(REF), params={"partition_date_lte": "2026-01-01"})
    assert one.status_code == 400 and "is not partitioned" in one.json()["detail"]


def test_order_by_and_paging(v2: V2) -> None:
    path = RUNS.format("~")
    rows = v2.viewer.get(path, params={"order_by": ["-dag_id", "dag_run_id"], "limit": 100}).json()[
        "dag_runs"
    ]
    keys = [(r["dag_id"], r["dag_run_id"]) for r in rows]
    assert keys == sorted(sorted(keys, key=lambda k: k[1]), key=lambda k: k[0], reverse=True)
    newest = v2.viewer.get(path, params={"order_by": "-run_after", "limit": 3}).json()
    afters = [r["run_after"] for r in newest["dag_runs"]]
    assert afters == sorted(afters, reverse=True) and len(afters) == 3
    assert newest["total_entries"] > 3
    page2 = v2.viewer.get(path, params={"order_by": "-run_after", "limit": 3, "offset": 3}).json()["dag_runs"]
    assert not {r["dag_run_id"] for r in page2} & set(r["dag_run_id"] for r in newest["dag_runs"])
    by_duration = v2.viewer.get(path, params={"order_by": "-duration", "limit": 100}).json()["dag_runs"]
    durations = [r["duration"] for r in by_duration]
    known = [d for d in durations if d is not None]
    assert known == sorted(known, reverse=True) and durations[: durations.count(None)] == [
        None
    ] * durations.count(None)
    unknown = v2.viewer.get(path, params={"order_by": "colour"})
    assert unknown.json() == {
        "detail": "Ordering with 'colour' is disallowed or the attribute does not exist on the model"
    }
    assert v2.viewer.get(path, params={"order_by": "-updated_at"}).status_code == 400
    assert v2.viewer.get(path, params={"order_by": "conf"}).status_code == 200


def test_cursor_pages_chain(v2: V2) -> None:
    path = RUNS.format("~")
    everything = [r["dag_run_id"] for r in v2.viewer.get(path, params={"limit": 100}).json()["dag_runs"]]
    seen: list[str] = []
    body = v2.viewer.get(path, params={"limit": 2, "cursor": ""}).json()
    assert body["previous_cursor"] is None and body["total_entries_limit"] == 50_000
    while True:
        seen += [r["dag_run_id"] for r in body["dag_runs"]]
        if body["next_cursor"] is None:
            break
        body = v2.viewer.get(path, params={"limit": 2, "cursor": body["next_cursor"]}).json()
        assert body["previous_cursor"].startswith("~")
    assert seen == everything
    assert v2.viewer.get(path, params={"cursor": "!!"}).json() == {"detail": "Invalid cursor token"}


def test_batch_list(v2: V2) -> None:
    path = RUNS.format("~") + "/list"
    body = v2.viewer.post(
        path, json={"dag_ids": [REF], "states": ["success"], "order_by": "-run_after"}
    ).json()
    assert v2.base.run_id in [r["dag_run_id"] for r in body["dag_runs"]]
    assert {r["dag_id"] for r in body["dag_runs"]} == {REF}
    assert body["total_entries"] == len(body["dag_runs"])
    limited = v2.viewer.post(path, json={"page_limit": 1, "page_offset": 0}).json()
    assert len(limited["dag_runs"]) == 1 and limited["total_entries"] > 1
    assert v2.viewer.post(path, json={"dag_ids": ["nope"]}).json()["dag_runs"] == []
    assert v2.viewer.post(RUNS.format(REF) + "/list", json={}).status_code == 422  # only "~"
    assert v2.viewer.post(path, json={"states": ["sleeping"]}).status_code == 422
    assert v2.viewer.post(path, json={"logical_date_gte": "2026-01-01T00:00:00"}).status_code == 422  # naive
    assert v2.viewer.post(path, json={"order_by": "duration"}).status_code == 400  # not in the batch list
    assert v2.viewer.post(path, json={"unknown": 1}).status_code == 422


def test_patch_state_and_note(v2: V2) -> None:
    run = trigger(v2, "make_orders", dag_run_id="api_v2_patch")
    path = RUNS.format("make_orders") + "/api_v2_patch"
    finish(v2, "make_orders", run["dag_run_id"])
    failed = v2.admin.patch(path, json={"state": "failed"})
    assert failed.status_code == 200 and failed.json()["state"] == "failed"
    masked = v2.admin.patch(path, params={"update_mask": "note"}, json={"state": "success"})
    assert masked.json()["state"] == "failed"  # the mask leaves the state out
    assert v2.admin.patch(path, json={"state": "success"}).json()["state"] == "success"
    assert v2.admin.patch(path, json={"state": "running"}).status_code == 422  # not a state a user sets
    assert v2.admin.patch(path, json={"note": "hi"}).status_code == 400
    assert v2.admin.patch(path, json={"note": None}).status_code == 200
    assert v2.viewer.patch(path, json={"state": "failed"}).status_code == 403
    queued = v2.admin.patch(path, json={"state": "queued"})
    assert queued.status_code == 200 and queued.json()["state"] == "queued"
    assert finish(v2, "make_orders", "api_v2_patch") == "success"  # its work was done: it ends again


def test_clear_dry_run_then_clear(v2: V2) -> None:
    path = RUNS.format(REF) + f"/{v2.base.run_id}/clear"
    dry = v2.admin.post(path, json={})  # dry_run defaults to true
    assert dry.status_code == 200
    body = dry.json()
    tasks = {(t["task_id"], t["map_index"]) for t in body["task_instances"]}
    assert ("list_files", -1) in tasks and ("process_file", 2) in tasks
    assert body["total_entries"] == len(body["task_instances"]) == 5
    assert all(t["dag_run_id"] == v2.base.run_id and t["state"] == "success" for t in body["task_instances"])
    assert v2.admin.post(path, json={"only_failed": True}).json() == {
        "task_instances": [],
        "total_entries": 0,
    }
    both = v2.admin.post(path, json={"only_failed": True, "only_new": True})
    assert both.status_code == 422
    assert v2.admin.post(path, json={"only_new": True}).status_code == 400
    assert v2.admin.post(path, json={"note": "x"}).status_code == 400
    assert v2.viewer.post(path, json={}).status_code == 403
    with v2.base.harness.store.read() as conn:
        run = runs_q.get_run(conn, REF, v2.base.run_id)
        assert all(
            r["state"] == "success" for r in ti_q.list_for_run(conn, run["id"])
        )  # dry run changed nothing


def test_clear_reruns_a_run(v2: V2) -> None:
    run = trigger(v2, "make_orders", dag_run_id="api_v2_clear")
    finish(v2, "make_orders", run["dag_run_id"])
    path = RUNS.format("make_orders") + "/api_v2_clear/clear"
    cleared = v2.admin.post(path, json={"dry_run": False})
    assert cleared.status_code == 200
    assert set(cleared.json()) == FIELDS and cleared.json()["state"] in ("running", "success")
    assert finish(v2, "make_orders", "api_v2_clear") == "success"


def test_delete(v2: V2) -> None:
    run = trigger(v2, "make_orders", dag_run_id="api_v2_delete")
    finish(v2, "make_orders", run["dag_run_id"])
    path = RUNS.format("make_orders") + "/api_v2_delete"
    with v2.base.harness.store.read() as conn:
        pk = runs_q.get_run(conn, "make_orders", "api_v2_delete")["id"]
        assert ti_q.list_for_run(conn, pk)
    assert v2.viewer.delete(path).status_code == 403
    gone = v2.admin.delete(path)
    assert gone.status_code == 204 and gone.content == b""
    assert v2.viewer.get(path).json() == not_found("make_orders", "api_v2_delete")
    with v2.base.harness.store.read() as conn:
        assert ti_q.list_for_run(conn, pk) == []
    assert v2.admin.delete(path).status_code == 404


SLEEPY = """
from millstream import dag, task

@dag(schedule=None)
def api_v2_sleepy():
    @task
    def nap():
        import time
        time.sleep(60)
    nap()

api_v2_sleepy()
"""


def test_a_running_run_cannot_be_deleted_and_is_marked_failed(v2: V2) -> None:
    v2.base.harness.write_dag("api_v2_sleepy.py", SLEEPY)
    v2.base.harness.wait_parsed("api_v2_sleepy")
    trigger(v2, "api_v2_sleepy", dag_run_id="nap")
    if v2.base.harness.scheduler:
        v2.base.harness.scheduler.nudge()
    wait_for(lambda: _state(v2, "api_v2_sleepy", "nap") == "running", 30, "the run to start")
    path = RUNS.format("api_v2_sleepy") + "/nap"
    r = v2.admin.delete(path)
    assert r.json() == {
        "detail": "The DagRun with dag_id: `api_v2_sleepy` and run_id: `nap` cannot be deleted in running state"
    }
    assert r.status_code == 409
    again = v2.admin.patch(path, json={"state": "queued"})
    assert again.status_code == 400 and "is running" in again.json()["detail"]
    marked = v2.admin.patch(path, json={"state": "failed"})
    assert marked.status_code == 200
    assert finish(v2, "api_v2_sleepy", "nap") == "failed"
    assert v2.admin.delete(path).status_code == 204


def _state(v2: V2, dag_id: str, run_id: str) -> str:
    return v2.base.harness.run_state(dag_id, run_id)


def test_wait_streams_states_and_results(v2: V2) -> None:
    path = RUNS.format(REF) + f"/{v2.base.run_id}/wait"
    r = v2.viewer.get(path, params={"interval": 0.1, "result": ["list_files", "process_file", "summarize"]})
    assert r.status_code == 200
    lines = [json.loads(x) for x in r.text.splitlines() if x]
    assert lines == [
        {
            "state": "success",
            "results": {
                "list_files": ["file_001.csv", "file_002.csv", "file_003.csv"],
                "process_file": [
                    "Processed: file_001.csv",
                    "Processed: file_002.csv",
                    "Processed: file_003.csv",
                ],
                "summarize": None,
            },
        }
    ]
    plain = v2.viewer.get(path, params={"interval": 1})
    assert [json.loads(x) for x in plain.text.splitlines() if x] == [{"state": "success"}]
    assert v2.viewer.get(path).status_code == 422  # interval is required


@pytest.mark.parametrize("dag_id", ["~", REF])
def test_viewer_reads_anon_does_not(v2: V2, dag_id: str) -> None:
    assert v2.viewer.get(RUNS.format(dag_id)).status_code == 200
    assert v2.anon.get(RUNS.format(dag_id)).status_code == 401


# -- the store's filtered query on every backend (the API's lists push everything into SQL) --

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _runs_on(store: Any) -> None:
    from millstream.core.model import DagSpec, TaskSpec
    from millstream.core.states import RunState
    from millstream.store import dags as dags_q

    spec = DagSpec("d", (TaskSpec("t"),), fileloc="/dags/d.py")
    with store.begin() as conn:
        version = dags_q.sync_parsed(conn, [spec], now=T0, paused_on_create=False)["d"]
        for i, (run_id, conf, secs) in enumerate(
            [("r_a", {"k": "x"}, 5.000002), ("r_b", {"k": "y"}, 5.000001), ("R_c", {}, None)]
        ):
            pk = runs_q.create_run(
                conn,
                dag_id="d",
                run_id=run_id,
                version_id=version,
                run_type="manual",
                logical_date=T0 + timedelta(days=i),
                interval=(None, None),
                run_after=T0,
                conf=conf,
                now=T0,
            )
            if secs is not None:
                runs_q.set_state(
                    conn,
                    pk,
                    RunState.SUCCESS,
                    start_date=T0,
                    end_date=T0 + timedelta(seconds=secs),
                )


def test_filtered_on_every_backend(store: Any) -> None:
    _runs_on(store)

    def ids(**kw: Any) -> list[str]:
        with store.read() as conn:
            q = runs_q.filtered(conn.dialect.name, now=datetime.now(UTC), **kw)
            return [r["run_id"] for r in conn.execute(q).mappings()]

    assert ids() == ["r_a", "r_b", "R_c"]
    assert ids(order=[("duration", False)]) == ["r_b", "r_a", "R_c"]  # microseconds count; NULL last
    assert ids(order=[("duration", True)]) == ["R_c", "r_a", "r_b"]  # NULL first descending
    assert ids(order=[("conf", True)]) == ["R_c", "r_b", "r_a"]  # as JSON text: "{}" after '{"k"'
    assert ids(ranges={"duration": (5.0000015, None, None, None)}) == ["r_a"]
    assert ids(like={"run_id": ["r_%"]}) == ["r_a", "r_b", "R_c"]  # ILIKE: case-insensitive
    assert ids(prefix={"run_id": [("r_", "r`")]}) == ["r_a", "r_b"]  # prefix: case-sensitive
    assert ids(conf_contains='"k": "y"') == ["r_b"]
    assert ids(states=["success"], run_types=["manual", None]) == ["r_a", "r_b"]
    assert ids(states=[None]) == []
    assert ids(version_numbers=[1]) == ["r_a", "r_b", "R_c"] and ids(version_numbers=[2]) == []
    # Not started yet passes a lower bound on start_date (Airflow's nullable range) ...
    assert ids(ranges={"start_date": (T0, None, None, None)}) == ["r_a", "r_b", "R_c"]
    assert ids(ranges={"start_date": (T0, None, None, None)}, nullable_dates=False) == ["r_a", "r_b"]
    # ... and an upper bound only while now is within it.
    assert ids(ranges={"end_date": (None, None, T0 + timedelta(seconds=6), None)}) == ["r_a", "r_b"]
    assert ids(dag_ids=[]) == []
    assert ids(consuming_asset="x") == []
    assert ids(ranges={"logical_date": (None, T0 + timedelta(days=1), None, None)}) == ["R_c"]
    with store.begin() as conn:
        pk = runs_q.get_run(conn, "d", "r_a")["id"]
        assert runs_q.delete_run(conn, pk, frozenset({"running"})) is False
        assert runs_q.delete_run(conn, pk, frozenset({"success"})) is True
    assert ids() == ["r_b", "R_c"]


def test_bulk_update_and_delete(v2: V2) -> None:
    for run_id in ("api_v2_bulk_1", "api_v2_bulk_2"):
        finish(v2, "make_orders", trigger(v2, "make_orders", dag_run_id=run_id)["dag_run_id"])
    path = RUNS.format("make_orders")
    r = v2.admin.patch(
        path,
        json={
            "actions": [
                {"action": "create", "entities": [{"dag_run_id": "x"}]},
                {
                    "action": "update",
                    "entities": [
                        {"dag_run_id": "api_v2_bulk_1", "state": "failed"},
                        {"dag_run_id": "api_v2_bulk_2", "note": "refused"},
                    ],
                },
                {"action": "delete", "entities": ["api_v2_bulk_2", {"dag_run_id": "gone"}]},
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["create"]["errors"][0]["status_code"] == 405
    assert body["update"]["success"] == ["make_orders.api_v2_bulk_1"]
    assert body["update"]["errors"][0]["status_code"] == 400
    assert body["delete"] == {
        "success": [],
        "errors": [
            {
                "error": "The DagRuns with these identifiers: [('make_orders', 'gone')] were not found",
                "status_code": 404,
            }
        ],
    }
    assert _state(v2, "make_orders", "api_v2_bulk_1") == "failed"
    skip = v2.admin.patch(
        path,
        json={
            "actions": [
                {"action": "delete", "entities": ["api_v2_bulk_2", "gone"], "action_on_non_existence": "skip"}
            ]
        },
    )
    assert skip.json()["delete"] == {"success": ["make_orders.api_v2_bulk_2"], "errors": []}
    assert v2.viewer.get(path + "/api_v2_bulk_2").status_code == 404
    tilde = v2.admin.patch(RUNS.format("~"), json={"actions": [{"action": "delete", "entities": ["x"]}]})
    assert tilde.json()["delete"]["errors"][0]["status_code"] == 400
    assert v2.viewer.patch(path, json={"actions": []}).status_code == 403


def test_clear_dag_runs(v2: V2) -> None:
    path = "/api/v2/dags/{}/clearDagRuns"
    entry = {"dag_run_id": v2.base.run_id}
    dry = v2.admin.post(path.format(REF), json={"dag_runs": [entry]})
    assert dry.status_code == 200 and dry.json()["total_entries"] == 5
    tilde = v2.admin.post(path.format("~"), json={"dag_runs": [entry]})
    assert tilde.status_code == 400 and "every entry must provide a concrete dag_id" in tilde.json()["detail"]
    both = v2.admin.post(path.format("~"), json={"dag_runs": [{**entry, "dag_id": REF}]})
    assert both.json()["total_entries"] == 5
    other = v2.admin.post(path.format("make_orders"), json={"dag_runs": [{**entry, "dag_id": REF}]})
    assert other.json() == {"detail": f"Entry dag_id '{REF}' does not match the URL dag_id 'make_orders'."}
    assert v2.admin.post(path.format(REF), json={"dag_runs": []}).status_code == 422  # no selector
    partition = v2.admin.post(path.format(REF), json={"partition_key": "p"})
    assert partition.json() == {"task_instances": [], "total_entries": 0}  # no run has a partition
    missing = v2.admin.post(path.format(REF), json={"dag_runs": [{"dag_run_id": "nope"}]})
    assert missing.json() == not_found(REF, "nope")
    run = trigger(v2, "make_orders", dag_run_id="api_v2_bulk_clear")
    finish(v2, "make_orders", run["dag_run_id"])
    done = v2.admin.post(
        path.format("make_orders"), json={"dag_runs": [{"dag_run_id": "api_v2_bulk_clear"}], "dry_run": False}
    )
    assert done.status_code == 200
    assert [r["dag_run_id"] for r in done.json()["dag_runs"]] == ["api_v2_bulk_clear"]
    assert finish(v2, "make_orders", "api_v2_bulk_clear") == "success"


def test_upstream_asset_events(v2: V2) -> None:
    used = runs_q_list(v2, "use_orders")
    if not used:
        finish(v2, "make_orders", trigger(v2, "make_orders")["dag_run_id"])
        wait_for(lambda: bool(runs_q_list(v2, "use_orders")), 30, "an asset-triggered run")
        used = runs_q_list(v2, "use_orders")
    r = v2.viewer.get(RUNS.format("use_orders") + f"/{used[0]['run_id']}/upstreamAssetEvents")
    assert r.status_code == 200
    body = r.json()
    assert body["total_entries"] >= 1 and body["asset_events"][0]["name"] == "orders"
    assert used[0]["run_id"] in [x["run_id"] for x in body["asset_events"][0]["created_dagruns"]]
    plain = v2.viewer.get(RUNS.format(REF) + f"/{v2.base.run_id}/upstreamAssetEvents").json()
    assert plain == {"asset_events": [], "total_entries": 0}
    assert v2.viewer.get(RUNS.format(REF) + "/nope/upstreamAssetEvents").json() == not_found(REF, "nope")


def runs_q_list(v2: V2, dag_id: str) -> list[Any]:
    with v2.base.harness.store.read() as conn:
        return [r for r in runs_q.list_runs(conn, dag_id) if r["run_type"] == "asset_triggered"]
