"""Airflow 3.3's task instance, log and XCom endpoints over a real run of the mapped DAG
process_daily_files (list_files -> process_file x3 -> summarize)."""

from __future__ import annotations

import uuid

import pytest

from tests.api_v2.conftest import V2

DAG = "process_daily_files"
TIS = "/api/v2/dags/{dag}/dagRuns/{run}/taskInstances"

#: TaskInstanceResponse's fields in Airflow 3.3.2 (its datamodel, aliases applied).
TI_FIELDS = {
    "id", "task_id", "dag_id", "dag_run_id", "map_index", "logical_date", "run_after", "start_date",
    "end_date", "duration", "state", "try_number", "max_tries", "task_display_name", "dag_display_name",
    "hostname", "unixname", "pool", "pool_slots", "queue", "priority_weight", "operator", "operator_name",
    "queued_when", "scheduled_when", "pid", "executor", "executor_config", "note", "rendered_map_index",
    "rendered_fields", "trigger", "triggerer_job", "dag_version",
}  # fmt: skip


def tis(v2: V2, run: str | None = None, dag: str = DAG) -> str:
    return TIS.format(dag=dag, run=run or v2.base.run_id)


def test_list_a_run(v2: V2) -> None:
    r = v2.viewer.get(tis(v2))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total_entries"] == 5
    assert set(body) == {
        "task_instances",
        "total_entries",
        "total_entries_limit",
        "next_cursor",
        "previous_cursor",
    }
    first = body["task_instances"][0]
    assert set(first) == TI_FIELDS
    # Default order: map_index, then the key.
    assert [(t["task_id"], t["map_index"]) for t in body["task_instances"]] == [
        ("list_files", -1),
        ("summarize", -1),
        ("process_file", 0),
        ("process_file", 1),
        ("process_file", 2),
    ]
    assert all(t["state"] == "success" and t["dag_run_id"] == v2.base.run_id for t in body["task_instances"])
    assert uuid.UUID(first["id"]) and first["dag_version"]["version_number"] >= 1
    assert first["dag_version"]["bundle_name"] == "dags-folder"
    assert first["pool"] == "default_pool" and first["executor_config"] == "{}"
    assert first["note"] is None and first["unixname"] is None and first["trigger"] is None
    assert first["operator_name"] == "@task" and first["operator"] is None
    assert first["start_date"].endswith("Z")


def test_list_tilde_and_filters(v2: V2) -> None:
    r = v2.viewer.get(TIS.format(dag="~", run="~"), params={"task_id": "process_file"})
    # This run and any the schedule made (3 mapped instances each).
    assert r.status_code == 200 and r.json()["total_entries"] % 3 == 0 and r.json()["total_entries"] >= 3
    r = v2.viewer.get(TIS.format(dag=DAG, run="~"), params={"state": ["success", "failed"]})
    assert r.json()["total_entries"] >= 5
    r = v2.viewer.get(tis(v2), params={"state": "failed"})
    assert r.json()["total_entries"] == 0
    r = v2.viewer.get(tis(v2), params={"state": "bogus"})
    assert r.status_code == 422 and r.json()["detail"].startswith(
        "Invalid value for state. Valid values are removed"
    )
    r = v2.viewer.get(tis(v2), params={"map_index": [0, 2]})
    assert [t["map_index"] for t in r.json()["task_instances"]] == [0, 2]
    r = v2.viewer.get(tis(v2), params={"pool": "default_pool", "try_number": 1, "duration_gte": 0})
    assert r.json()["total_entries"] == 5
    r = v2.viewer.get(tis(v2), params={"duration_lt": 0})
    assert r.json()["total_entries"] == 0
    r = v2.viewer.get(tis(v2), params={"task_display_name_pattern": "PROCESS"})
    assert r.json()["total_entries"] == 3
    r = v2.viewer.get(tis(v2), params={"queue": "default", "operator_name_pattern": "@task"})
    assert r.json()["total_entries"] == 5
    r = v2.viewer.get(tis(v2), params={"executor": "CeleryExecutor"})
    assert r.json()["total_entries"] == 0
    r = v2.viewer.get(
        TIS.format(dag="~", run="~"), params={"dag_id_prefix_pattern": "process_", "run_id_pattern": "manual"}
    )
    assert r.json()["total_entries"] >= 5
    first = v2.viewer.get(tis(v2)).json()["task_instances"][0]
    r = v2.viewer.get(
        tis(v2), params={"start_date_gte": first["start_date"], "logical_date_lte": "2100-01-01T00:00:00Z"}
    )
    assert r.status_code == 200 and r.json()["total_entries"] >= 1
    r = v2.viewer.get(tis(v2), params={"version_number": 999})
    assert r.json()["total_entries"] == 0


def test_list_refusals_and_404s(v2: V2) -> None:
    r = v2.viewer.get(TIS.format(dag="~", run=v2.base.run_id))
    assert r.status_code == 400 and r.json() == {"detail": "dag_id is required when dag_run_id is specified"}
    r = v2.viewer.get(tis(v2, run="nope"))
    assert r.status_code == 404
    assert r.json() == {"detail": f"DagRun with dag_id: `{DAG}` and run_id: `nope` was not found"}
    r = v2.viewer.get(TIS.format(dag="nodag", run="~"))
    assert r.status_code == 404 and r.json() == {"detail": "The Dag with ID: `nodag` was not found"}
    r = v2.viewer.get(tis(v2), params={"updated_at_gte": "2025-01-01T00:00:00Z"})
    assert r.status_code == 400 and "updated_at" in r.json()["detail"]
    r = v2.viewer.get(tis(v2), params={"cursor": ""})
    assert r.status_code == 400
    r = v2.viewer.get(tis(v2), params={"order_by": "nope"})
    assert r.status_code == 400
    assert (
        r.json()["detail"]
        == "Ordering with 'nope' is disallowed or the attribute does not exist on the model"
    )
    r = v2.viewer.get(tis(v2), params={"order_by": "id"})
    assert r.status_code == 400 and "not supported" in r.json()["detail"]
    assert v2.anon.get(tis(v2)).status_code == 401


def test_order_and_paging(v2: V2) -> None:
    r = v2.viewer.get(tis(v2), params={"order_by": "-map_index", "limit": 2})
    body = r.json()
    assert body["total_entries"] == 5 and [t["map_index"] for t in body["task_instances"]] == [2, 1]
    r = v2.viewer.get(tis(v2), params={"order_by": "-map_index", "limit": 2, "offset": 4})
    assert [t["map_index"] for t in r.json()["task_instances"]] == [-1]
    r = v2.viewer.get(tis(v2), params={"order_by": ["start_date", "-try_number"]})
    starts = [t["start_date"] for t in r.json()["task_instances"]]
    assert starts == sorted(starts)
    r = v2.viewer.get(tis(v2), params={"limit": 1000})
    assert len(r.json()["task_instances"]) == 5  # capped at 100, still all five


def test_batch_list(v2: V2) -> None:
    url = TIS.format(dag="~", run="~") + "/list"
    one = {"dag_ids": [DAG], "dag_run_ids": [v2.base.run_id]}
    r = v2.viewer.post(url, json={**one, "task_ids": ["process_file"], "order_by": "-map_index"})
    assert r.status_code == 200, r.text
    assert [t["map_index"] for t in r.json()["task_instances"]] == [2, 1, 0]
    r = v2.viewer.post(url, json={"dag_run_ids": [v2.base.run_id], "page_limit": 2, "state": ["success"]})
    assert r.json()["total_entries"] == 5 and len(r.json()["task_instances"]) == 2
    assert v2.viewer.post(url, json={"bogus": 1}).status_code == 422
    assert v2.viewer.post(TIS.format(dag=DAG, run="~") + "/list", json={}).status_code == 422


def test_get_one_and_mapped(v2: V2) -> None:
    r = v2.viewer.get(tis(v2) + "/list_files")
    assert r.status_code == 200 and r.json()["task_id"] == "list_files" and r.json()["map_index"] == -1
    r = v2.viewer.get(tis(v2) + "/process_file")
    assert r.status_code == 404
    assert r.json() == {"detail": "Task instance is mapped, add the map_index value to the URL"}
    r = v2.viewer.get(tis(v2) + "/process_file/1")
    assert r.status_code == 200 and r.json()["map_index"] == 1
    r = v2.viewer.get(tis(v2) + "/process_file/7")
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"The Mapped Task Instance with dag_id: `{DAG}`, run_id: `{v2.base.run_id}`, task_id: `process_file`, "
        "and map_index: `7` was not found"
    )
    r = v2.viewer.get(tis(v2) + "/nope")
    assert r.json()["detail"] == (
        f"The Task Instance with dag_id: `{DAG}`, run_id: `{v2.base.run_id}` and task_id: `nope` was not found"
    )
    r = v2.viewer.get(tis(v2) + "/process_file/listMapped", params={"order_by": "-map_index", "limit": 2})
    assert r.json()["total_entries"] == 3 and [t["map_index"] for t in r.json()["task_instances"]] == [2, 1]
    r = v2.viewer.get(tis(v2) + "/list_files/listMapped")
    assert r.status_code == 404 and r.json() == {"detail": "Task id list_files is not mapped"}
    r = v2.viewer.get(tis(v2) + "/nope/listMapped")
    assert r.status_code == 404 and r.json() == {"detail": "Task id nope not found"}


def test_tries(v2: V2) -> None:
    r = v2.viewer.get(tis(v2) + "/process_file/0/tries")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total_entries"] == 1 and body["task_instances"][0]["try_number"] == 1
    assert "id" not in body["task_instances"][0] and body["task_instances"][0]["state"] == "success"
    r = v2.viewer.get(tis(v2) + "/list_files/tries/1")
    assert r.status_code == 200 and r.json()["try_number"] == 1
    r = v2.viewer.get(tis(v2) + "/process_file/2/tries/1")
    assert r.status_code == 200 and r.json()["map_index"] == 2
    r = v2.viewer.get(tis(v2) + "/list_files/tries/5")
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"The Task Instance with dag_id: `{DAG}`, run_id: `{v2.base.run_id}`, task_id: `list_files`, "
        "try_number: `5` and map_index: `-1` was not found"
    )
    r = v2.viewer.get(tis(v2) + "/process_file/tries")  # map_index -1: the mapped task has none
    assert r.status_code == 404 and "map_index: `-1` was not found" in r.json()["detail"]


def test_logs_json_ndjson_text(v2: V2) -> None:
    url = tis(v2) + "/process_file/logs/1"
    r = v2.viewer.get(url, params={"map_index": 0}, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"content", "continuation_token"} and body["continuation_token"] is None
    events = [m["event"] for m in body["content"]]
    assert events[0] == "::group::Log message source details" and "::endgroup::" in events
    assert "Processing file_001.csv" in events
    printed = next(m for m in body["content"] if m["event"] == "Processing file_001.csv")
    assert printed["timestamp"].endswith("Z")  # carried over from the line before, as Airflow does
    r = v2.viewer.get(url, params={"map_index": 0}, headers={"Accept": "text/plain"})
    assert r.status_code == 200 and "Processing file_001.csv" in r.text
    assert r.headers["content-type"].startswith("text/plain")
    r = v2.viewer.get(url, params={"map_index": 0}, headers={"Accept": "application/x-ndjson"})
    assert r.status_code == 200 and any('"Processing file_001.csv"' in line for line in r.text.splitlines())
    r = v2.viewer.get(url, params={"map_index": 0}, headers={"Accept": "image/png"})
    assert r.status_code == 406
    r = v2.viewer.get(url, params={"map_index": 0, "token": "forged"})
    assert r.status_code == 400
    assert r.json() == {"detail": "Bad Signature. Please use only the tokens provided by the API."}
    r = v2.viewer.get(tis(v2) + "/process_file/logs/2", params={"map_index": 0})
    assert r.status_code == 404 and r.json() == {"detail": "TaskInstance not found"}
    r = v2.viewer.get(tis(v2) + "/process_file/logs/1")  # map_index -1 does not exist
    assert r.status_code == 404


def test_xcom_list_and_get(v2: V2) -> None:
    base = tis(v2) + "/process_file/xcomEntries"
    r = v2.viewer.get(base)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total_entries"] == 3
    assert [(x["key"], x["map_index"]) for x in body["xcom_entries"]] == [
        ("return_value", i) for i in range(3)
    ]
    assert set(body["xcom_entries"][0]) == {
        "key", "timestamp", "logical_date", "map_index", "task_id", "dag_id", "run_id", "dag_display_name",
        "task_display_name", "run_after",
    }  # fmt: skip
    r = v2.viewer.get(base, params={"map_index": 1, "xcom_key": "return_value"})
    assert r.json()["total_entries"] == 1
    r = v2.viewer.get(
        TIS.format(dag="~", run="~") + "/~/xcomEntries", params={"limit": 2, "order_by": "-map_index"}
    )
    assert r.json()["total_entries"] >= 4 and r.json()["xcom_entries"][0]["map_index"] == 2
    r = v2.viewer.get(base + "/return_value", params={"map_index": 0})
    assert r.status_code == 200 and r.json()["value"] == "Processed: file_001.csv"
    r = v2.viewer.get(tis(v2) + "/list_files/xcomEntries/return_value", params={"deserialize": True})
    assert r.json()["value"] == ["file_001.csv", "file_002.csv", "file_003.csv"]
    r = v2.viewer.get(tis(v2) + "/list_files/xcomEntries/return_value", params={"stringify": True})
    assert r.json()["value"] == "['file_001.csv', 'file_002.csv', 'file_003.csv']"
    r = v2.viewer.get(base + "/nope", params={"map_index": 0})
    assert r.status_code == 404 and r.json() == {"detail": "XCom entry with key: `nope` not found"}


def test_xcom_write(v2: V2) -> None:
    base = tis(v2) + "/summarize/xcomEntries"
    assert v2.viewer.post(base, json={"key": "k", "value": 1}).status_code == 403
    r = v2.admin.post(base, json={"key": "note/1", "value": {"a": [1, 2]}})
    assert r.status_code == 201, r.text
    assert r.json()["value"] == {"a": [1, 2]} and r.json()["key"] == "note/1"
    r = v2.admin.post(base, json={"key": "note/1", "value": 2})
    assert r.status_code == 409
    r = v2.admin.patch(base + "/note/1", json={"value": "changed"})
    assert r.status_code == 200 and r.json()["value"] == "changed"
    assert v2.viewer.get(base + "/note/1").json()["value"] == "changed"
    assert v2.admin.delete(base + "/note/1").status_code == 204
    r = v2.admin.delete(base + "/note/1")
    assert r.status_code == 404
    assert r.json() == {"detail": "The XCom with key: `note/1` with mentioned task instance doesn't exist."}
    r = v2.admin.patch(base + "/missing", json={"value": 1})
    assert r.status_code == 404
    r = v2.admin.post(tis(v2) + "/nope/xcomEntries", json={"key": "k", "value": 1})
    assert r.status_code == 404 and r.json() == {"detail": f"Task with ID: `nope` not found in dag: `{DAG}`"}
    r = v2.admin.post(tis(v2, run="nope") + "/summarize/xcomEntries", json={"key": "k", "value": 1})
    assert r.json() == {"detail": f"Dag Run with ID: `nope` not found for dag: `{DAG}`"}


def test_patch_dry_run_and_refusals(v2: V2) -> None:
    url = tis(v2) + "/summarize"
    r = v2.admin.patch(url + "/dry_run", json={"new_state": "failed"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total_entries"] == 1 and body["task_instances"][0]["state"] == "success"  # unchanged
    r = v2.admin.patch(
        tis(v2) + "/process_file/dry_run", json={"new_state": "failed", "include_downstream": True}
    )
    assert sorted((t["task_id"], t["map_index"]) for t in r.json()["task_instances"]) == [
        ("process_file", 0), ("process_file", 1), ("process_file", 2), ("summarize", -1),
    ]  # fmt: skip
    r = v2.admin.patch(tis(v2) + "/process_file/1/dry_run", json={"new_state": "failed"})
    assert [t["map_index"] for t in r.json()["task_instances"]] == [1]
    r = v2.admin.patch(tis(v2) + "/process_file/dry_run", json={})  # no new_state: the task's instances
    assert [t["map_index"] for t in r.json()["task_instances"]] == [0, 1, 2]
    assert v2.viewer.get(url).json()["state"] == "success"
    assert v2.viewer.patch(url, json={"new_state": "failed"}).status_code == 403
    r = v2.admin.patch(url, json={"new_state": "running"})
    assert r.status_code == 422
    r = v2.admin.patch(url, json={"new_state": "success", "include_past": True})
    assert r.status_code == 400
    r = v2.admin.patch(url, json={"note": "hello"})
    assert r.status_code == 400 and "note" in r.json()["detail"]
    r = v2.admin.patch(url, json={"new_state": "success"})
    assert r.status_code == 409 and r.json() == {"detail": "Task id summarize is already in success state"}
    r = v2.admin.patch(tis(v2) + "/nope", json={"new_state": "success"})
    assert r.status_code == 404 and r.json() == {"detail": f"Task 'nope' not found in Dag '{DAG}'"}
    r = v2.admin.patch(tis(v2, run="nope") + "/summarize", json={"new_state": "success"})
    assert r.status_code == 404 and isinstance(r.json()["detail"], list)  # Airflow's one-element list


def test_clear_dry_run(v2: V2) -> None:
    url = f"/api/v2/dags/{DAG}/clearTaskInstances"
    body = {"dag_run_id": v2.base.run_id, "task_ids": ["summarize"], "only_failed": False}
    r = v2.admin.post(url, json=body)  # dry_run is Airflow's default
    assert r.status_code == 200, r.text
    assert [t["task_id"] for t in r.json()["task_instances"]] == ["summarize"]
    r = v2.admin.post(url, json={**body, "task_ids": [["process_file", 1]], "include_downstream": True})
    assert sorted((t["task_id"], t["map_index"]) for t in r.json()["task_instances"]) == [
        ("process_file", 1), ("summarize", -1),
    ]  # fmt: skip
    r = v2.admin.post(url, json={**body, "include_past": True})  # this run and those before it
    assert r.status_code == 200 and v2.base.run_id in {t["dag_run_id"] for t in r.json()["task_instances"]}
    r = v2.admin.post(url, json={**body, "start_date": "2020-01-01T00:00:00Z", "dag_run_id": None})
    assert r.status_code == 200 and r.json()["total_entries"] >= 1
    r = v2.admin.post(url, json={"dag_run_id": v2.base.run_id})  # only_failed: nothing failed
    assert r.json() == {
        "task_instances": [], "total_entries": 0, "total_entries_limit": None, "next_cursor": None,
        "previous_cursor": None,
    }  # fmt: skip
    assert v2.viewer.get(tis(v2) + "/summarize").json()["state"] == "success"
    r = v2.admin.post(url, json={**body, "only_running": True, "only_failed": False})
    assert r.status_code == 400
    r = v2.admin.post(url, json={**body, "dry_run": False, "reset_dag_runs": False})
    assert r.status_code == 400
    r = v2.admin.post(url, json={"only_failed": True, "only_running": True})
    assert r.status_code == 422
    r = v2.admin.post(url, json={**body, "dag_run_id": "nope"})
    assert r.status_code == 404 and r.json() == {"detail": f"Dag Run id nope not found in dag {DAG}"}
    assert v2.admin.post("/api/v2/dags/nodag/clearTaskInstances", json={}).status_code == 404
    assert v2.viewer.post(url, json=body).status_code == 403


@pytest.mark.parametrize("path", ["/summarize/xcomEntries", "/summarize/logs/1", "/process_file/0"])
def test_routes_do_not_collide(v2: V2, path: str) -> None:
    assert v2.viewer.get(tis(v2) + path).status_code == 200


def test_mark_and_clear_for_real(v2: V2) -> None:
    h = v2.base.harness
    run = h.trigger(DAG)
    assert h.wait_run(DAG, run) == "success"
    r = v2.admin.patch(tis(v2, run=run) + "/summarize", json={"new_state": "failed"})
    assert r.status_code == 200, r.text
    assert [(t["task_id"], t["state"]) for t in r.json()["task_instances"]] == [("summarize", "failed")]
    assert h.wait_run(DAG, run) == "failed"
    url = f"/api/v2/dags/{DAG}/clearTaskInstances"
    r = v2.admin.post(url, json={"dag_run_id": run, "task_ids": ["summarize"], "dry_run": False})
    assert r.status_code == 200, r.text
    assert [(t["task_id"], t["state"]) for t in r.json()["task_instances"]] == [("summarize", None)]
    assert h.wait_run(DAG, run) == "success"
    assert v2.viewer.get(tis(v2, run=run) + "/summarize").json()["try_number"] == 2
    tries = v2.viewer.get(tis(v2, run=run) + "/summarize/tries").json()
    assert [t["try_number"] for t in tries["task_instances"]] == [1, 2]
    assert tries["task_instances"][0]["state"] is None  # Millstream keeps no record of an earlier try's state
    r = v2.viewer.get(tis(v2, run=run) + "/summarize/logs/1", headers={"Accept": "text/plain"})
    assert "Completed 3 files" in r.text


def test_bodies_read_by_airflows_client_models(v2: V2) -> None:
    """The generated client's models (strict about types and enums) take our bodies."""
    from airflow_client.client import models as m

    got = m.TaskInstanceCollectionResponse.from_dict(v2.viewer.get(tis(v2)).json())
    assert got is not None and got.total_entries == 5 and got.task_instances[0].dag_version is not None
    tries = m.TaskInstanceHistoryCollectionResponse.from_dict(
        v2.viewer.get(tis(v2) + "/list_files/tries").json()
    )
    assert tries is not None and tries.task_instances[0].try_number == 1
    log = v2.viewer.get(tis(v2) + "/list_files/logs/1", headers={"Accept": "application/json"}).json()
    assert m.TaskInstancesLogResponse.from_dict(log) is not None
    xcoms = m.XComCollectionResponse.from_dict(v2.viewer.get(tis(v2) + "/process_file/xcomEntries").json())
    assert xcoms is not None and xcoms.total_entries == 3
    one = v2.viewer.get(tis(v2) + "/list_files/xcomEntries/return_value").json()
    assert m.XComResponseNative.from_dict(one) is not None


def test_log_lines_become_structured_messages() -> None:
    from millstream.api.v2.logs import structured

    lines = [
        '{"timestamp": "2026-01-01T00:00:01+00:00", "level": "info", "logger": "t", "event": "json line"}',
        "[2026-01-01T00:00:02.5+00:00] WARNING airflow.task: careful",
        "printed",
        "[2026-01-01 00:00:03,250] a marker",
    ]
    assert structured(lines) == [
        {"timestamp": "2026-01-01T00:00:01Z", "level": "info", "logger": "t", "event": "json line"},
        {
            "timestamp": "2026-01-01T00:00:02.500000Z",
            "event": "careful",
            "level": "warning",
            "logger": "airflow.task",
        },
        {"timestamp": "2026-01-01T00:00:02.500000Z", "event": "printed"},
        {"timestamp": "2026-01-01T00:00:03.250000Z", "event": "a marker"},
    ]


def test_delete_task_instance_is_refused(v2: V2) -> None:
    r = v2.admin.delete(tis(v2) + "/summarize")
    assert r.status_code == 400 and "does not delete" in r.json()["detail"]
    assert v2.admin.delete(tis(v2) + "/nope").status_code == 404
    assert v2.viewer.delete(tis(v2) + "/summarize").status_code == 403
