"""Airflow 3.3.2's DAG endpoints on Millstream's store: ``/dags`` (list with every filter,
one, details, pause one or many, delete refused), ``/dagStats``, ``/importErrors``,
``/dags/{dag_id}/tasks``, ``/dagSources``, ``/dagTags``. Bodies are checked against the
real ``airflow_client`` models, errors against Airflow's texts."""

from __future__ import annotations

from typing import Any

from airflow_client.client.models import (
    DAGCollectionResponse,
    DAGDetailsResponse,
    DAGResponse,
    DAGSourceResponse,
    DagStatsCollectionResponse,
    DAGTagCollectionResponse,
    ImportErrorCollectionResponse,
    ImportErrorResponse,
    TaskCollectionResponse,
    TaskResponse,
)

from millstream.api.v2.dags_filters import prefix, search
from millstream.store import dags as dags_q

from .conftest import V2

ALL = ["daily_report", "make_orders", "process_daily_files", "templated", "use_orders", "with_params"]


def ids(v2: V2, query: str = "", **params: Any) -> list[str]:
    r = v2.admin.get(f"/api/v2/dags{query}", params=params or None)
    assert r.status_code == 200, r.text
    return [d["dag_id"] for d in r.json()["dags"]]


def test_list_is_airflows_shape_ordered_by_dag_id(v2: V2) -> None:
    r = v2.viewer.get("/api/v2/dags")
    assert r.status_code == 200
    body = r.json()
    DAGCollectionResponse.from_dict(body)  # the real client reads it
    assert [d["dag_id"] for d in body["dags"]] == ALL and body["total_entries"] == 6
    report = body["dags"][0]
    assert report["tags"] == [
        {"name": "backfill", "dag_id": "daily_report", "dag_display_name": "daily_report"},
        {"name": "example", "dag_id": "daily_report", "dag_display_name": "daily_report"},
    ]
    assert report["bundle_name"] == "dags-folder" and report["bundle_version"] is None
    assert report["relative_fileloc"] == "daily_report.py" and report["fileloc"].endswith("/daily_report.py")
    assert report["timetable_summary"] == "0 0 * * *" and report["timetable_periodic"] is True
    assert report["is_backfillable"] is True and report["is_stale"] is False
    assert report["owners"] == [] and isinstance(report["file_token"], str)
    assert report["last_parsed_time"].endswith("Z")
    templated = body["dags"][3]
    assert templated["dag_display_name"] == "Templated <b>"
    assert templated["timetable_summary"] is None and templated["is_backfillable"] is False


def test_every_filter(v2: V2) -> None:
    assert ids(v2, tags="example") == ["daily_report"]
    assert ids(v2, "?tags=assets&tags=example") == ["daily_report", "make_orders"]
    assert ids(v2, "?tags=backfill&tags=example&tags_match_mode=all") == ["daily_report"]
    assert ids(v2, "?tags=assets&tags=example&tags_match_mode=all") == []
    assert ids(v2, dag_id_pattern="ORDERS") == ["make_orders", "use_orders"]
    assert ids(v2, dag_id_pattern="P%FILE_") == ["process_daily_files"]  # ILIKE wildcards
    assert ids(v2, dag_id_pattern="make | templ") == ["make_orders", "templated"]  # | is OR
    assert ids(v2, dag_id_pattern="~") == ALL
    assert ids(v2, dag_id_prefix_pattern="use_") == ["use_orders"]
    assert ids(v2, dag_id_prefix_pattern="Use") == []  # prefix is case-sensitive
    assert ids(v2, dag_display_name_pattern="<b>") == ["templated"]
    assert ids(v2, dag_display_name_prefix_pattern="Templ") == ["templated"]
    assert ids(v2, paused="true") == []
    assert ids(v2, has_import_errors="false") == ALL
    assert ids(v2, has_import_errors="true") == []
    assert ids(v2, has_asset_schedule="true") == ["use_orders"]
    assert ids(v2, asset_dependency="ORD") == ["use_orders"]
    assert ids(v2, timetable_type="AssetTriggeredTimetable") == ["use_orders"]
    assert ids(v2, "?timetable_type=NullTimetable&timetable_type=CronTriggerTimetable") == [
        "make_orders",
        "process_daily_files",
        "templated",
        "with_params",
    ]
    assert ids(v2, timetable_type="CronDataIntervalTimetable") == ["daily_report"]
    assert ids(v2, bundle_name="dags-folder") == ALL
    assert ids(v2, bundle_name="other") == []
    assert ids(v2, bundle_version="v1") == []  # the DAG folder is unversioned
    assert ids(v2, is_favorite="true") == [] and ids(v2, is_favorite="false") == ALL
    ran = ids(v2, last_dag_run_state="success")
    assert "process_daily_files" in ran and "templated" not in ran
    assert set(ids(v2, dag_run_state="none")) >= {"make_orders", "templated", "use_orders"}
    assert ids(v2, dag_run_start_date_gte="2000-01-01T00:00:00Z") == ran
    assert ids(v2, dag_run_end_date_lt="2000-01-01T00:00:00Z") == []
    bad = v2.admin.get("/api/v2/dags", params={"dag_run_state": "nope"})
    assert bad.status_code == 422
    assert bad.json() == {
        "detail": "Invalid value for state. Valid values are queued, running, success, failed"
    }
    assert v2.admin.get("/api/v2/dags", params={"last_dag_run_state": "nope"}).status_code == 422
    owners = v2.admin.get("/api/v2/dags", params={"owners": "airflow"})
    assert owners.status_code == 400 and "does not record DAG owners" in owners.json()["detail"]


def test_order_and_paging(v2: V2) -> None:
    assert ids(v2, order_by="-dag_id") == ALL[::-1]
    assert ids(v2, limit=2, offset=1) == ALL[1:3]
    page = v2.admin.get("/api/v2/dags", params={"limit": 2}).json()
    assert page["total_entries"] == 6 and len(page["dags"]) == 2
    assert ids(v2, limit=1000) == ALL  # capped at 100, as Airflow's maximum_page_limit
    by_display = ids(v2, order_by="dag_display_name")
    assert by_display[0] == "templated"  # "Templated <b>": by code point, as SQLite orders text
    by_start = ids(v2, order_by="last_run_start_date")
    assert by_start[-3:] == ["make_orders", "templated", "use_orders"]  # no run: last, by dag_id
    assert ids(v2, "?order_by=-last_run_state&order_by=dag_id")[:3] == [
        "make_orders",
        "templated",
        "use_orders",
    ]
    r = v2.admin.get("/api/v2/dags", params={"order_by": "owners"})
    assert r.status_code == 400
    assert r.json() == {
        "detail": "Ordering with 'owners' is disallowed or the attribute does not exist on the model"
    }
    many = v2.admin.get("/api/v2/dags", params={"order_by": ["dag_id"] * 11})
    assert many.status_code == 400 and many.json()["detail"].startswith(
        "Ordering with more than 10 parameters is not allowed."
    )


def test_one_dag_and_its_details(v2: V2) -> None:
    one = v2.viewer.get("/api/v2/dags/templated")
    assert one.status_code == 200
    DAGResponse.from_dict(one.json())
    assert one.json()["dag_display_name"] == "Templated <b>"
    details = v2.viewer.get("/api/v2/dags/templated/details").json()
    DAGDetailsResponse.from_dict(details)
    assert details["owner_links"] == {"ops": "https://ops.example.com"}
    assert details["params"] == {"region": {"value": "eu", "schema": {}, "description": None, "source": None}}
    assert details["latest_dag_version"]["version_number"] >= 1
    assert details["latest_dag_version"]["bundle_name"] == "dags-folder"
    assert details["concurrency"] == details["max_active_tasks"] == 16
    consumer = v2.viewer.get("/api/v2/dags/use_orders/details").json()
    assert consumer["asset_expression"] == {"asset": {"uri": "orders", "name": "orders", "group": "asset"}}
    assert consumer["is_backfillable"] is False
    daily = v2.viewer.get("/api/v2/dags/with_params/details").json()
    assert daily["start_date"] == "2025-01-01T00:00:00Z" and daily["catchup"] is False
    assert daily["params"]["n"]["value"] == 3


def test_missing_dag_answers_as_airflow(v2: V2) -> None:
    for path in ("/dags/nope", "/dags/nope/details", "/dags/nope/tasks", "/dags/nope/tasks/x"):
        r = v2.viewer.get(f"/api/v2{path}")
        assert (r.status_code, r.json()) == (404, {"detail": "The Dag with ID: `nope` was not found"})
    r = v2.admin.patch("/api/v2/dags/nope", json={"is_paused": True})
    assert (r.status_code, r.json()) == (404, {"detail": "Dag with id: nope was not found"})
    r = v2.admin.delete("/api/v2/dags/nope")
    assert (r.status_code, r.json()) == (404, {"detail": "Dag with id: nope was not found"})


def test_pause_and_unpause_one_dag(v2: V2) -> None:
    r = v2.admin.patch("/api/v2/dags/make_orders", json={"is_paused": True})
    assert r.status_code == 200 and r.json()["is_paused"] is True
    DAGResponse.from_dict(r.json())
    with v2.base.harness.store.read() as conn:
        assert dags_q.get_dag(conn, "make_orders")["is_paused"] is True
    assert v2.base.admin.get("/api/v1/dags/make_orders").json()["is_paused"] is True  # one store, one flag
    assert ids(v2, paused="true") == ["make_orders"]
    masked = v2.admin.patch("/api/v2/dags/make_orders?update_mask=is_paused", json={"is_paused": False})
    assert masked.status_code == 200 and masked.json()["is_paused"] is False
    wrong = v2.admin.patch("/api/v2/dags/make_orders?update_mask=tags", json={"is_paused": True})
    assert (wrong.status_code, wrong.json()) == (
        400,
        {"detail": "Only `is_paused` field can be updated through the REST API"},
    )
    extra = v2.admin.patch("/api/v2/dags/make_orders", json={"is_paused": True, "tags": []})
    assert extra.status_code == 422 and extra.json()["detail"][0]["type"] == "extra_forbidden"
    assert v2.admin.patch("/api/v2/dags/make_orders", json={}).status_code == 422
    viewer = v2.viewer.patch("/api/v2/dags/make_orders", json={"is_paused": True})
    assert (viewer.status_code, viewer.json()) == (403, {"detail": "Forbidden"})
    assert v2.anon.patch("/api/v2/dags/make_orders", json={"is_paused": True}).status_code == 401
    assert ids(v2, paused="true") == []


def test_pause_many_by_pattern(v2: V2) -> None:
    r = v2.admin.patch("/api/v2/dags?dag_id_pattern=orders&limit=1", json={"is_paused": True})
    assert r.status_code == 200
    body = r.json()
    assert body["total_entries"] == 2 and [d["dag_id"] for d in body["dags"]] == ["make_orders"]
    assert body["dags"][0]["is_paused"] is True
    assert ids(v2, paused="true") == ["make_orders", "use_orders"]  # every match, not only the page
    none = v2.admin.patch("/api/v2/dags", json={"is_paused": False})
    assert none.json() == {"dags": [], "total_entries": 0}  # no pattern: nothing matches
    assert ids(v2, paused="true") == ["make_orders", "use_orders"]
    back = v2.admin.patch("/api/v2/dags?dag_id_prefix_pattern=~&paused=true", json={"is_paused": False})
    assert back.json()["total_entries"] == 2
    assert ids(v2, paused="true") == []
    assert v2.viewer.patch("/api/v2/dags?dag_id_pattern=~", json={"is_paused": True}).status_code == 403
    wrong = v2.admin.patch("/api/v2/dags?dag_id_pattern=~&update_mask=x", json={"is_paused": True})
    assert wrong.status_code == 400
    assert ids(v2, paused="true") == []


def test_delete_is_refused_with_the_reason(v2: V2) -> None:
    r = v2.admin.delete("/api/v2/dags/make_orders")
    assert r.status_code == 400 and "cannot delete a DAG's metadata" in r.json()["detail"]
    assert v2.viewer.delete("/api/v2/dags/make_orders").status_code == 403
    assert "make_orders" in ids(v2)


def test_dag_stats_list_every_state(v2: V2) -> None:
    body = v2.viewer.get("/api/v2/dagStats").json()
    DagStatsCollectionResponse.from_dict(body)
    by_dag = {d["dag_id"]: d for d in body["dags"]}
    assert body["total_entries"] == len(body["dags"]) and "templated" not in by_dag  # no runs, not listed
    stats = by_dag["process_daily_files"]["stats"]
    assert [s["state"] for s in stats] == ["queued", "running", "success", "failed"]
    assert {s["state"]: s["count"] for s in stats}["success"] >= 1
    one = v2.viewer.get("/api/v2/dagStats?dag_ids=process_daily_files&dag_ids=nope").json()
    assert [d["dag_id"] for d in one["dags"]] == ["process_daily_files"] and one["total_entries"] == 1


def test_import_errors(v2: V2) -> None:
    body = v2.viewer.get("/api/v2/importErrors").json()
    ImportErrorCollectionResponse.from_dict(body)
    assert body["total_entries"] == 1
    (error,) = body["import_errors"]
    assert error["filename"] == "broken.py" and error["bundle_name"] == "dags-folder"
    assert "SyntaxError" in error["stack_trace"] and error["timestamp"].endswith("Z")
    one = v2.viewer.get(f"/api/v2/importErrors/{error['import_error_id']}")
    assert one.status_code == 200 and one.json() == error
    ImportErrorResponse.from_dict(one.json())

    def count(**params: str) -> int:
        return int(v2.viewer.get("/api/v2/importErrors", params=params).json()["total_entries"])

    assert (
        count(filename="broken.py") == count(filename_pattern="BROK") == count(bundle_name="dags-folder") == 1
    )
    assert (
        count(filename_prefix_pattern="x") == count(bundle_name="other") == count(filename="/broken.py") == 0
    )
    assert v2.viewer.get("/api/v2/importErrors", params={"order_by": "-import_error_id"}).status_code == 200
    bad = v2.viewer.get("/api/v2/importErrors", params={"order_by": "message"})
    assert bad.status_code == 400
    missing = v2.viewer.get("/api/v2/importErrors/7")
    assert missing.json() == {"detail": "The ImportError with import_error_id: `7` was not found"}
    assert missing.status_code == 404


def test_tasks(v2: V2) -> None:
    body = v2.viewer.get("/api/v2/dags/templated/tasks").json()
    TaskCollectionResponse.from_dict(body)
    assert [t["task_id"] for t in body["tasks"]] == ["plain", "say"] and body["total_entries"] == 2
    reverse = v2.viewer.get("/api/v2/dags/templated/tasks", params={"order_by": "-task_id"}).json()
    assert [t["task_id"] for t in reverse["tasks"]] == ["say", "plain"]
    by_operator = v2.viewer.get("/api/v2/dags/templated/tasks", params={"order_by": "operator_name"}).json()
    assert [t["operator_name"] for t in by_operator["tasks"]] == ["@task", "BashOperator"]
    bad = v2.viewer.get("/api/v2/dags/templated/tasks", params={"order_by": "kind"})
    assert (bad.status_code, bad.json()) == (
        400,
        {"detail": "Ordering with 'kind' is disallowed or the attribute does not exist on the model"},
    )
    say = v2.viewer.get("/api/v2/dags/templated/tasks/say").json()
    TaskResponse.from_dict(say)
    assert say["operator_name"] == "BashOperator" and say["pool"] == "default_pool"
    assert say["retry_delay"] == {"__type": "TimeDelta", "days": 0, "seconds": 300, "microseconds": 0}
    assert say["params"]["region"] == {"value": "eu", "schema": {}, "description": None, "source": "dag"}
    assert say["extra_links"] == []
    missing = v2.viewer.get("/api/v2/dags/templated/tasks/nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Task with id nope was not found"})


def test_dag_source(v2: V2) -> None:
    r = v2.viewer.get("/api/v2/dagSources/templated")
    assert r.status_code == 200
    DAGSourceResponse.from_dict(r.json())
    assert "def templated" in r.json()["content"] and r.json()["version_number"] >= 1
    assert r.json()["dag_display_name"] == "Templated <b>"
    text = v2.viewer.get("/api/v2/dagSources/templated", headers={"Accept": "text/plain"})
    assert text.headers["content-type"].startswith("text/plain") and text.text == r.json()["content"]
    xml = v2.viewer.get("/api/v2/dagSources/templated", headers={"Accept": "application/xml"})
    assert (xml.status_code, xml.json()) == (
        406,
        {"detail": "Only application/json or text/plain is supported"},
    )
    old = v2.viewer.get("/api/v2/dagSources/templated", params={"version_number": 99})
    assert (old.status_code, old.json()) == (
        404,
        {"detail": "The source code of the Dag templated, version_number 99 was not found"},
    )
    huge = v2.viewer.get("/api/v2/dagSources/templated", params={"version_number": 2**63})
    assert huge.status_code == 404
    missing = v2.viewer.get("/api/v2/dagSources/nope")
    assert missing.json() == {"detail": "The source code of the Dag nope, version_number None was not found"}


def test_dag_tags(v2: V2) -> None:
    body = v2.viewer.get("/api/v2/dagTags").json()
    DAGTagCollectionResponse.from_dict(body)
    assert body == {"tags": ["assets", "backfill", "example"], "total_entries": 3}
    assert v2.viewer.get("/api/v2/dagTags", params={"order_by": "-name", "limit": 1}).json() == {
        "tags": ["example"],
        "total_entries": 3,
    }
    assert v2.viewer.get("/api/v2/dagTags", params={"tag_name_pattern": "A%E"}).json()["tags"] == [
        "assets",
        "example",
    ]
    assert v2.viewer.get("/api/v2/dagTags", params={"tag_name_prefix_pattern": "ba"}).json()["tags"] == [
        "backfill"
    ]


def test_patterns_mean_what_airflows_sql_means() -> None:
    like = search("a_c|x%z")
    assert like is not None and like("zzABCzz") and like("x--z") and not like("ac")
    assert search(None) is None
    escaped = search("50\\%")
    assert escaped is not None and escaped("up 50% now") and not escaped("up 500 now")
    starts = prefix("test_")
    assert starts is not None and starts("test") and starts("tests") and not starts("tesu")
    anything = prefix("~")
    assert anything is not None and anything("") and anything("x")
