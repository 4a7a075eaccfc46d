"""Every endpoint of the REST API: what it returns, who may call it, and what bad input gets."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Api, wait_for

REF = "process_daily_files"


def q(value: str) -> str:
    return quote(value, safe="")


def ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json()


def error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    for w in words:
        assert w in body["detail"], body["detail"]
    return body["detail"]


# -- authentication and roles -----------------------------------------------------------------


def test_only_health_answers_without_credentials(api: Api):
    assert ok(api.anon.get("/api/v1/health"))["status"] == "ok"
    spec = ok(api.admin.get("/api/v1/openapi.json"))
    error(api.anon.get("/api/v1/openapi.json"), 401, "no credentials")
    checked = 0
    for path, ops in spec["paths"].items():
        assert path.startswith("/api/v1/"), path  # /api/v2 has its own document and tests
        if path in ("/api/v1/health", "/api/v1/auth/token"):
            continue
        url = path.replace("{dag_id}", REF).replace("{run_id}", "x").replace("{task_id}", "t")
        url = url.replace("{try_number}", "1").replace("{backfill_id}", "1").replace("{name}", "p")
        for method in ops:
            r = api.anon.request(method.upper(), url, json={})
            assert r.status_code == 401, (method, url, r.text)
            assert r.headers["www-authenticate"] == 'Bearer realm="millstream"'
            checked += 1
    assert checked >= 25


def test_a_wrong_token_or_scheme_is_refused(api: Api):
    for header, words in (
        ("Bearer ms_nope", "invalid or expired token"),
        ("Basic cm9vdDpwYXNzd29yZC0x", "unsupported auth scheme 'Basic'"),
        ("Bearer", "no token after 'Bearer'"),
        ("token", "unsupported auth scheme 'token'"),
    ):
        r = api.anon.get("/api/v1/dags", headers={"Authorization": header})
        error(r, 401, words, "POST /api/v1/auth/token")


def test_a_password_gets_a_token_that_works(api: Api):
    token = ok(
        api.anon.post("/api/v1/auth/token", json={"username": "reader", "password": "password-2"}), 201
    )
    assert token["token"].startswith("ms_")
    me = ok(api.anon.get("/api/v1/me", headers={"Authorization": f"Bearer {token['token']}"}))
    assert me["username"] == "reader" and me["role"] == "viewer"
    error(api.anon.post("/api/v1/auth/token", json={"username": "reader", "password": "wrong"}), 401, "wrong")
    error(api.anon.post("/api/v1/auth/token", json={"username": "ghost", "password": "x"}), 401, "wrong")
    error(api.anon.post("/api/v1/auth/token", json={"username": "reader"}), 422, "body.password")


MUTATIONS = [
    ("PATCH", f"/api/v1/dags/{REF}", {"is_paused": True}),
    ("POST", f"/api/v1/dags/{REF}/runs", {}),
    ("PATCH", f"/api/v1/dags/{REF}/runs/x", {"state": "success"}),
    ("POST", f"/api/v1/dags/{REF}/clear", {"dry_run": True}),
    ("POST", f"/api/v1/dags/{REF}/runs/x/tasks/summarize/mark", {"state": "success"}),
    ("POST", "/api/v1/assets/events", {"asset": "orders"}),
    (
        "POST",
        "/api/v1/backfills",
        {"dag_id": "daily_report", "from_date": "2025-01-01", "to_date": "2025-01-02"},
    ),
    ("POST", "/api/v1/backfills/1/pause", None),
    ("POST", "/api/v1/backfills/1/resume", None),
    ("POST", "/api/v1/backfills/1/cancel", None),
    ("PUT", "/api/v1/pools/p", {"slots": 1}),
    ("DELETE", "/api/v1/pools/p", None),
    ("POST", "/api/v1/users", {"username": "x", "password": "password-x"}),
    ("GET", "/api/v1/users", None),
]


@pytest.mark.parametrize(("method", "url", "body"), MUTATIONS)
def test_a_viewer_reads_but_changes_nothing(api: Api, method, url, body):
    error(api.viewer.request(method, url, json=body), 403, "viewer", "admin role")


def test_a_viewer_reads_everything(api: Api):
    for url in (
        "/api/v1/dags",
        f"/api/v1/dags/{REF}",
        f"/api/v1/dags/{REF}/runs",
        f"/api/v1/dags/{REF}/grid",
        "/api/v1/assets",
        "/api/v1/assets/events",
        "/api/v1/backfills",
        "/api/v1/pools",
        "/api/v1/import-errors",
    ):
        ok(api.viewer.get(url))


def test_ui_session_changes_need_the_csrf_token(api: Api):
    browser = TestClient(api.app)
    r = browser.post("/login", data={"username": "root", "password": "password-1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert ok(browser.get("/api/v1/me"))["username"] == "root"
    error(browser.patch("/api/v1/dags/daily_report", json={"is_paused": True}), 403, "X-CSRF-Token")
    page = browser.get("/").text
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    ok(browser.patch("/api/v1/dags/daily_report", json={"is_paused": True}, headers={"X-CSRF-Token": token}))
    ok(browser.patch("/api/v1/dags/daily_report", json={"is_paused": False}, headers={"X-CSRF-Token": token}))
    browser.post("/logout")
    error(browser.get("/api/v1/me"), 401)


def test_a_wrong_password_does_not_log_in(api: Api):
    browser = TestClient(api.app)
    r = browser.post("/login", data={"username": "root", "password": "nope"}, follow_redirects=False)
    assert r.status_code == 401 and "Wrong username or password" in r.text
    assert browser.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_users_are_listed_and_created_by_admins(api: Api):
    names = [u["username"] for u in ok(api.admin.get("/api/v1/users"))["items"]]
    assert {"root", "reader"} <= set(names)
    made = ok(api.admin.post("/api/v1/users", json={"username": "carol", "password": "password-3"}), 201)
    assert made["role"] == "viewer"
    error(
        api.admin.post("/api/v1/users", json={"username": "carol", "password": "password-3"}), 409, "exists"
    )
    error(
        api.admin.post("/api/v1/users", json={"username": "dave", "password": "short"}), 422, "body.password"
    )
    error(
        api.admin.post("/api/v1/users", json={"username": "a b", "password": "password-3"}), 422, "username"
    )


# -- DAGs -------------------------------------------------------------------------------------


def test_dags_list_paged_and_filtered(api: Api):
    everything = ok(api.admin.get("/api/v1/dags"))
    ids = [d["dag_id"] for d in everything["items"]]
    assert {REF, "daily_report", "make_orders", "use_orders"} <= set(ids)
    assert everything["total"] == len(ids)
    one = ok(api.admin.get("/api/v1/dags", params={"limit": 1, "offset": 1}))
    assert [d["dag_id"] for d in one["items"]] == ids[1:2] and one["total"] == len(ids)
    assert [d["dag_id"] for d in ok(api.admin.get("/api/v1/dags", params={"tag": "assets"}))["items"]] == [
        "make_orders"
    ]
    assert [
        d["dag_id"] for d in ok(api.admin.get("/api/v1/dags", params={"dag_id_pattern": "ORDERS"}))["items"]
    ] == [
        "make_orders",
        "use_orders",
    ]
    ref = next(d for d in everything["items"] if d["dag_id"] == REF)
    assert ref["schedule"] == "@daily" and ref["recent_runs"][0]["state"] == "success"
    error(api.admin.get("/api/v1/dags", params={"limit": 0}), 422, "query.limit")
    error(api.admin.get("/api/v1/dags", params={"offset": -1}), 422, "query.offset")
    error(api.admin.get("/api/v1/dags", params={"paused": "perhaps"}), 422, "query.paused")


def test_dag_detail_has_its_tasks_in_order(api: Api):
    d = ok(api.admin.get(f"/api/v1/dags/{REF}"))
    assert [t["task_id"] for t in d["tasks"]] == ["list_files", "process_file", "summarize"]
    mapped = d["tasks"][1]
    assert (
        mapped["is_mapped"] and mapped["upstream"] == ["list_files"] and mapped["downstream"] == ["summarize"]
    )
    consumer = ok(api.admin.get("/api/v1/dags/use_orders"))
    assert consumer["asset_trigger"]["description"] == "orders"
    producer = ok(api.admin.get("/api/v1/dags/make_orders"))
    assert producer["tasks"][0]["outlets"] == ["asset:orders"]
    error(api.admin.get("/api/v1/dags/nope"), 404, "nope")


def test_pause_and_unpause(api: Api):
    assert ok(api.admin.patch("/api/v1/dags/make_orders", json={"is_paused": True}))["is_paused"] is True
    assert (
        ok(api.admin.get("/api/v1/dags", params={"paused": True, "dag_id_pattern": "make_orders"}))["total"]
        == 1
    )
    assert ok(api.admin.patch("/api/v1/dags/make_orders", json={"is_paused": False}))["is_paused"] is False
    error(api.admin.patch("/api/v1/dags/make_orders", json={"is_paused": "maybe"}), 422, "body.is_paused")
    error(api.admin.patch("/api/v1/dags/make_orders", json={"paused": True}), 422, "body.paused")
    error(api.admin.patch("/api/v1/dags/nope", json={"is_paused": True}), 404, "nope")
    error(
        api.admin.patch(
            "/api/v1/dags/make_orders", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "JSON",
    )


def test_import_errors_name_the_file_and_line(api: Api):
    errs = ok(api.admin.get("/api/v1/import-errors"))
    assert errs["total"] == 1
    e = errs["items"][0]
    assert e["filename"].endswith("broken.py") and e["lineno"] == 3
    assert ok(api.admin.get("/api/v1/import-errors", params={"filename_pattern": "nothing"}))["total"] == 0


def test_grid_counts_instances_per_state(api: Api):
    g = ok(api.admin.get(f"/api/v1/dags/{REF}/grid"))
    assert [t["task_id"] for t in g["tasks"]] == ["list_files", "process_file", "summarize"]
    assert g["tasks"][1]["is_mapped"]
    assert g["cells"][api.run_id]["process_file"] == {"success": 3}
    assert g["total_runs"] >= 1


# -- runs and task instances ------------------------------------------------------------------


def test_trigger_with_conf_and_its_errors(api: Api):
    run = ok(
        api.admin.post("/api/v1/dags/with_params/runs", json={"conf": {"n": 5}, "run_id": "api_one"}), 201
    )
    assert (
        run["run_id"] == "api_one"
        and run["conf"] == {"n": 5}
        and run["state"] in ("queued", "running", "success")
    )
    error(
        api.admin.post("/api/v1/dags/with_params/runs", json={"run_id": "api_one"}), 409, "already has a run"
    )
    error(api.admin.post("/api/v1/dags/with_params/runs", json={"conf": [1, 2]}), 422, "body.conf")
    error(
        api.admin.post("/api/v1/dags/with_params/runs", json={"conf": {"n": 1}, "color": "red"}),
        422,
        "body.color",
    )
    error(api.admin.post("/api/v1/dags/nope/runs", json={}), 404, "nope")
    error(api.admin.post("/api/v1/dags/with_params/runs", json={"run_id": "x" * 300}), 422, "body.run_id")
    dated = ok(
        api.admin.post(
            "/api/v1/dags/with_params/runs", json={"logical_date": "2025-03-01T00:00:00", "run_id": "dated"}
        ),
        201,
    )
    assert dated["logical_date"].startswith("2025-03-01T00:00:00")
    assert api.harness.wait_run("with_params", "api_one") == "success"


def test_runs_listed_filtered_and_fetched(api: Api):
    runs = ok(api.admin.get(f"/api/v1/dags/{REF}/runs"))
    assert api.run_id in [r["run_id"] for r in runs["items"]]
    assert ok(api.admin.get(f"/api/v1/dags/{REF}/runs", params={"state": "failed"}))["total"] == 0
    assert ok(api.admin.get(f"/api/v1/dags/{REF}/runs", params={"run_type": "manual", "limit": 1}))["items"]
    assert (
        ok(api.admin.get(f"/api/v1/dags/{REF}/runs", params={"logical_date_gte": "2100-01-01"}))["total"] == 0
    )
    run = ok(api.admin.get(f"/api/v1/dags/{REF}/runs/{q(api.run_id)}"))
    assert run["state"] == "success" and run["duration"] is not None
    error(api.admin.get(f"/api/v1/dags/{REF}/runs/nope"), 404, "nope")
    error(api.admin.get("/api/v1/dags/nope/runs"), 404, "nope")
    error(
        api.admin.get(f"/api/v1/dags/{REF}/runs", params={"logical_date_gte": "yesterday"}),
        422,
        "logical_date_gte",
    )


def test_mark_a_run(api: Api):
    run_id = api.harness.trigger(REF, run_id="to_mark")
    api.harness.wait_run(REF, run_id)
    assert (
        ok(api.admin.patch(f"/api/v1/dags/{REF}/runs/to_mark", json={"state": "failed"}))["state"] == "failed"
    )
    assert (
        ok(api.admin.patch(f"/api/v1/dags/{REF}/runs/to_mark", json={"state": "success"}))["state"]
        == "success"
    )
    error(api.admin.patch(f"/api/v1/dags/{REF}/runs/to_mark", json={"state": "running"}), 422, "body.state")
    error(api.admin.patch(f"/api/v1/dags/{REF}/runs/nope", json={"state": "failed"}), 404, "nope")


def test_task_instances_with_map_index_and_label(api: Api):
    base = f"/api/v1/dags/{REF}/runs/{q(api.run_id)}/tasks"
    tis = ok(api.admin.get(base))
    assert tis["total"] == 5
    mapped = [t for t in tis["items"] if t["task_id"] == "process_file"]
    assert [t["map_index"] for t in mapped] == [0, 1, 2]
    assert all(t["state"] == "success" and t["try_number"] == 1 for t in mapped)
    page = ok(api.admin.get(base, params={"task_id": "process_file", "limit": 2, "offset": 2}))
    assert page["total"] == 3 and [t["map_index"] for t in page["items"]] == [2]
    assert ok(api.admin.get(base, params={"state": "failed"}))["total"] == 0
    one = ok(api.admin.get(f"{base}/process_file", params={"map_index": 2}))
    assert one["map_index"] == 2 and one["hostname"]
    error(api.admin.get(f"{base}/process_file", params={"map_index": 9}), 404, "valid: 0..2")
    error(api.admin.get(f"{base}/nope"), 404, "no task 'nope'")
    error(api.admin.get(f"{base}/process_file", params={"map_index": 2**40}), 422, "map_index")


def test_logs_per_try_from_an_offset(api: Api):
    url = f"/api/v1/dags/{REF}/runs/{q(api.run_id)}/tasks/process_file/logs/1"
    log = ok(api.admin.get(url, params={"map_index": 2}))
    assert "Processing file_003.csv" in log["content"] and log["complete"] and log["found"]
    rest = ok(api.admin.get(url, params={"map_index": 2, "offset": log["next_offset"]}))
    assert rest["content"] == "" and rest["next_offset"] == log["next_offset"] and rest["complete"]
    tail = ok(api.admin.get(url, params={"map_index": 2, "offset": 10}))
    assert log["content"][10:] == tail["content"]
    error(api.admin.get(url.replace("/logs/1", "/logs/2"), params={"map_index": 2}), 404, "no attempt 2")
    error(api.admin.get(url.replace("/logs/1", "/logs/0"), params={"map_index": 2}), 422, "try_number")


def test_dag_display_name_and_owner_links(api: Api):
    got = ok(api.viewer.get("/api/v1/dags/templated"))
    assert got["dag_display_name"] == "Templated <b>" and got["owner_links"] == {
        "ops": "https://ops.example.com"
    }
    assert ok(api.viewer.get(f"/api/v1/dags/{REF}"))["dag_display_name"] == REF
    page = TestClient(api.app)
    page.post("/login", data={"username": "reader", "password": "password-2"})
    html = page.get("/dags/templated").text
    assert "Templated &lt;b&gt;" in html and 'href="https://ops.example.com"' in html
    assert "Templated &lt;b&gt;" in page.get("/").text


def test_rendered_fields_of_an_attempt_secrets_masked(api: Api):
    run_id = api.harness.trigger("templated")
    assert api.harness.wait_run("templated", run_id) == "success"
    url = f"/api/v1/dags/templated/runs/{q(run_id)}/tasks/say/rendered"
    got = ok(api.viewer.get(url))
    assert got == {
        "try_number": 1,
        "fields": {
            "bash_command": "echo region=eu",
            "env": {"DB_PASSWORD": "***", "PLAIN": "x"},
            "cwd": None,
        },
        "renderers": {"bash_command": "bash", "env": "json"},  # BashOperator's template_fields_renderers
    }
    assert ok(api.viewer.get(url, params={"try_number": 1})) == got
    error(api.viewer.get(url, params={"try_number": 2}), 404, "attempt 2")
    # A @task whose arguments hold no template keeps nothing, and says why.
    error(api.viewer.get(url.replace("/say/", "/plain/")), 404, "when a template was rendered")
    error(api.viewer.get(url.replace("/say/", "/nope/")), 404, "no task 'nope'")


def test_clear_dry_run_then_for_real(api: Api):
    run_id = api.harness.trigger(REF, run_id="to_clear")
    api.harness.wait_run(REF, run_id)
    url = f"/api/v1/dags/{REF}/clear"
    dry = ok(api.admin.post(url, json={"run_id": "to_clear", "task_ids": ["summarize"], "dry_run": True}))
    assert dry["count"] == 1 and dry["dry_run"] and dry["items"][0]["task_id"] == "summarize"
    assert api.harness.run_state(REF, "to_clear") == "success"
    done = ok(api.admin.post(url, json={"run_id": "to_clear", "task_ids": ["process_file"], "map_index": 1}))
    assert [(c["task_id"], c["map_index"]) for c in done["items"]] == [("process_file", 1)]
    assert api.harness.wait_run(REF, "to_clear") == "success"
    assert api.harness.tis(REF, "to_clear")["process_file[1]"]["try_number"] == 2
    error(api.admin.post(url, json={"task_regex": "("}), 422, "regular expression")
    error(api.admin.post(url, json={"task_regex": "a", "task_ids": ["a"]}), 422, "not both")
    error(api.admin.post(url, json={"run_id": "nope"}), 404, "nope")
    error(api.admin.post(url, json={"map_index": -5}), 422, "body.map_index")


def test_mark_task_instances(api: Api):
    run_id = api.harness.trigger(REF, run_id="to_mark_ti")
    api.harness.wait_run(REF, run_id)
    url = f"/api/v1/dags/{REF}/runs/to_mark_ti/tasks/process_file/mark"
    marked = ok(api.admin.post(url, json={"state": "failed", "map_index": 0}))
    assert [(c["task_id"], c["map_index"]) for c in marked["items"]] == [("process_file", 0)]
    assert api.harness.tis(REF, "to_mark_ti")["process_file[0]"]["state"] == "failed"
    error(api.admin.post(url, json={"state": "maybe"}), 422, "body.state")
    error(api.admin.post(url.replace("process_file", "nope"), json={"state": "failed"}), 404)


# -- assets -----------------------------------------------------------------------------------


def test_assets_list_events_and_emit(api: Api):
    assets = ok(api.admin.get("/api/v1/assets"))
    orders = next(a for a in assets["items"] if a["name"] == "orders")
    assert orders["producers"] == ["make_orders.write"] and orders["consumers"] == ["use_orders"]
    before = orders["events"]
    emitted = ok(api.admin.post("/api/v1/assets/events", json={"asset": "orders", "extra": {"rows": 7}}), 201)
    events = ok(api.admin.get("/api/v1/assets/events", params={"asset": "orders"}))
    assert events["items"][0]["id"] == emitted["event_id"]
    assert events["items"][0]["source"] == "external" and events["items"][0]["extra"] == {"rows": 7}
    assert (
        ok(api.admin.get("/api/v1/assets", params={"name_pattern": "orders"}))["items"][0]["events"]
        == before + 1
    )
    assert ok(api.admin.get("/api/v1/assets/events", params={"source": "task"}))["total"] >= 0
    # the event schedules the consumer
    wait_for(lambda: ok(api.admin.get("/api/v1/dags/use_orders/runs"))["total"] >= 1, 30, "use_orders to run")
    error(api.admin.post("/api/v1/assets/events", json={"asset": "nope"}), 404, "nope")
    error(api.admin.post("/api/v1/assets/events", json={"asset": "orders", "extra": "x"}), 422, "body.extra")
    error(api.admin.post("/api/v1/assets/events", json={}), 422, "body.asset")
    error(api.admin.get("/api/v1/assets/events", params={"asset": "nope"}), 404, "nope")
    assert ok(api.admin.get("/api/v1/assets/aliases"))["total"] == 0


# -- backfills --------------------------------------------------------------------------------


def test_backfill_dry_run_create_progress_and_control(api: Api):
    body = {
        "dag_id": "daily_report",
        "from_date": "2025-02-01",
        "to_date": "2025-02-05",
        "max_active_runs": 2,
        "run_backwards": True,
        "reprocess_behavior": "failed",
        "conf": {},
    }
    plan = ok(api.admin.post("/api/v1/backfills/dry-run", json=body))
    assert (plan["create"], plan["rerun"], plan["skip"]) == (5, 0, 0) and len(plan["items"]) == 5
    b = ok(api.admin.post("/api/v1/backfills", json=body), 201)
    assert (
        b["total_runs"] == 5 and b["run_backwards"] and b["max_active_runs"] == 2 and b["state"] == "running"
    )
    url = f"/api/v1/backfills/{b['id']}"
    paused = ok(api.admin.post(f"{url}/pause"))
    assert paused["state"] == "paused"
    assert ok(api.admin.post(f"{url}/resume"))["state"] == "running"
    wait_for(lambda: ok(api.admin.get(url))["state"] == "completed", 60, "the backfill to complete")
    done = ok(api.admin.get(url))
    assert done["done_runs"] == 5 and done["progress"]["success"] == 5
    assert b["id"] in [
        x["id"] for x in ok(api.admin.get("/api/v1/backfills", params={"dag_id": "daily_report"}))["items"]
    ]
    assert ok(api.admin.get("/api/v1/backfills", params={"state": "cancelled"}))["total"] == 0
    error(api.admin.post(f"{url}/cancel"), 409, "completed")
    runs = ok(api.admin.get("/api/v1/dags/daily_report/runs", params={"backfill_id": b["id"]}))
    assert runs["total"] == 5


def test_backfill_bad_input(api: Api):
    base = {"dag_id": "daily_report", "from_date": "2025-02-10", "to_date": "2025-02-01"}
    error(api.admin.post("/api/v1/backfills", json=base), 422, "after")
    error(api.admin.post("/api/v1/backfills", json={**base, "dag_id": "nope"}), 404, "nope")
    error(api.admin.post("/api/v1/backfills", json={**base, "to_date": "not a date"}), 422, "body.to_date")
    error(
        api.admin.post("/api/v1/backfills", json={**base, "max_active_runs": 0}), 422, "body.max_active_runs"
    )
    error(
        api.admin.post("/api/v1/backfills", json={**base, "reprocess_behavior": "all"}),
        422,
        "reprocess_behavior",
    )
    huge = {**base, "from_date": "2025-01-01", "to_date": "9999-12-31"}
    error(api.admin.post("/api/v1/backfills/dry-run", json=huge), 422, "more than")
    error(
        api.admin.post("/api/v1/backfills", json={**huge, "dag_id": "make_orders"}), 422, "no time schedule"
    )
    error(api.admin.get("/api/v1/backfills/999999"), 404, "999999")
    error(api.admin.get("/api/v1/backfills/0"), 422, "backfill_id")
    error(api.admin.post("/api/v1/backfills/999999/pause"), 404)


# -- pools ------------------------------------------------------------------------------------


def test_pools(api: Api):
    made = ok(api.admin.put("/api/v1/pools/warehouse", json={"slots": 3, "description": "db"}))
    assert made == {"name": "warehouse", "slots": 3, "description": "db", "used": 0}
    assert ok(api.admin.put("/api/v1/pools/warehouse", json={"slots": 5}))["slots"] == 5
    names = [p["name"] for p in ok(api.admin.get("/api/v1/pools"))["items"]]
    assert {"default_pool", "warehouse"} <= set(names)
    assert [
        p["name"] for p in ok(api.admin.get("/api/v1/pools", params={"name_pattern": "ware"}))["items"]
    ] == ["warehouse"]
    error(api.admin.put("/api/v1/pools/warehouse", json={"slots": -1}), 422, "body.slots")
    error(api.admin.delete("/api/v1/pools/default_pool"), 409, "cannot be deleted")
    assert api.admin.delete("/api/v1/pools/warehouse").status_code == 204
    error(api.admin.delete("/api/v1/pools/warehouse"), 404, "warehouse")


# -- malformed requests -----------------------------------------------------------------------


def test_malformed_requests_are_4xx_never_500(api: Api):
    error(api.admin.get("/api/v1/dags/a%00b"), 422, "NUL")
    error(api.admin.get("/api/v1/dags", params={"dag_id_pattern": "a\x00"}), 422, "NUL")
    error(api.admin.post(f"/api/v1/dags/{REF}/runs", json={"run_id": "a\x00b"}), 422, "NUL")
    error(
        api.admin.post(
            f"/api/v1/dags/{REF}/runs", content=b"[", headers={"content-type": "application/json"}
        ),
        422,
    )
    error(api.admin.get("/api/v1/nothing-here"), 404)
    error(api.admin.delete("/api/v1/dags"), 405)
    error(api.admin.get(f"/api/v1/dags/{REF}/runs", params={"limit": 10**30}), 422, "query.limit")


# -- what a review found ----------------------------------------------------------------------


def test_a_session_does_not_outlive_its_user_or_a_logout(api: Api):
    from millstream.store import users as users_q

    with api.harness.store.begin() as conn:
        users_q.create_user(conn, "temp", "password-t", "viewer")
    old = TestClient(api.app)
    old.post("/login", data={"username": "temp", "password": "password-t"})
    assert ok(old.get("/api/v1/me"))["username"] == "temp"
    copied = dict(old.cookies)
    with api.harness.store.begin() as conn:
        users_q.delete_user(conn, "temp")
        users_q.create_user(conn, "newcomer", "password-n", "admin")  # never gets temp's id
    error(old.get("/api/v1/me"), 401)
    # a logout ends the user's sessions on the server, a copied cookie included
    first = TestClient(api.app)
    first.post("/login", data={"username": "newcomer", "password": "password-n"})
    copied = dict(first.cookies)
    page = first.get("/").text
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    first.post("/logout", headers={"X-CSRF-Token": token})
    replay = TestClient(api.app, cookies=copied)
    error(replay.get("/api/v1/me"), 401)


def test_a_new_password_revokes_tokens(api: Api):
    from millstream.store import users as users_q

    with api.harness.store.begin() as conn:
        users_q.create_user(conn, "rotating", "password-r", "viewer")
        token = users_q.create_token(conn, "rotating", "t")
    client = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    ok(client.get("/api/v1/me"))
    with api.harness.store.begin() as conn:
        users_q.set_password(conn, "rotating", "password-r2")
    error(client.get("/api/v1/me"), 401)


def test_json_that_would_not_come_back_out_is_refused(api: Api):
    url = f"/api/v1/dags/{REF}/runs"
    for raw in (b'{"conf": {"x": "\\ud800"}}', b'{"conf": {"x": NaN}}', b'{"conf": {"x": Infinity}}'):
        error(
            api.admin.post(url, content=raw, headers={"content-type": "application/json"}), 422, "body.conf"
        )
    raw = b'{"asset": "orders", "extra": {"x": "\\udfff"}}'
    error(
        api.admin.post("/api/v1/assets/events", content=raw, headers={"content-type": "application/json"}),
        422,
    )
    assert ok(api.admin.get(f"/api/v1/dags/{REF}/runs"))["total"] >= 1  # the list still works


def test_dates_beyond_utc_are_422(api: Api):
    url = f"/api/v1/dags/{REF}/runs"
    error(api.admin.post(url, json={"logical_date": "0001-01-01T00:00:00+05:00"}), 422, "logical_date")
    error(api.admin.post(url, json={"logical_date": "9999-12-31T23:59:59-05:00"}), 422, "logical_date")
    error(
        api.admin.get(url, params={"logical_date_gte": "0001-01-01T00:00:00+05:00"}), 422, "logical_date_gte"
    )


def test_a_log_offset_past_the_end_is_just_the_end(api: Api):
    url = f"/api/v1/dags/{REF}/runs/{q(api.run_id)}/tasks/list_files/logs/1"
    size = ok(api.admin.get(url))["next_offset"]
    far = ok(api.admin.get(url, params={"offset": 2**44}))
    assert far["content"] == "" and far["next_offset"] == size and far["complete"]


def test_login_with_an_impossible_username_is_a_401(api: Api):
    r = TestClient(api.app).post(
        "/login", data={"username": "root\x00", "password": "x"}, follow_redirects=False
    )
    assert r.status_code == 401


def test_a_backfill_of_the_future_is_refused(api: Api):
    body = {"dag_id": "daily_report", "from_date": "2999-01-01", "to_date": "2999-01-05"}
    error(api.admin.post("/api/v1/backfills", json=body), 422, "in the future")


def test_password_guessing_is_throttled_per_username(api: Api):
    from millstream.store import users as users_q

    with api.harness.store.begin() as conn:
        users_q.create_user(conn, "guessme", "password-g", "viewer")
    for _ in range(10):
        error(api.anon.post("/api/v1/auth/token", json={"username": "guessme", "password": "nope"}), 401)
    r = api.anon.post("/api/v1/auth/token", json={"username": "guessme", "password": "password-g"})
    error(r, 429, "too many wrong passwords")
    assert 1 <= int(r.headers["retry-after"]) <= 301
    page = TestClient(api.app).post("/login", data={"username": "guessme", "password": "password-g"})
    assert page.status_code == 429 and "too many wrong passwords" in page.text
    # other users are not affected
    ok(api.anon.post("/api/v1/auth/token", json={"username": "reader", "password": "password-2"}), 201)


def test_health_says_when_the_database_is_down(api: Api):
    from millstream.store import Store

    real = api.app.state.store
    api.app.state.store = Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        r = api.anon.get("/api/v1/health")
        assert r.status_code == 503 and r.json()["status"] == "degraded"
        assert "unreachable" in r.json()["database"]
    finally:
        api.app.state.store.dispose()
        api.app.state.store = real


def test_log_chunks_reassemble_exactly_across_cut_characters():
    import io

    from millstream.api.routes.runs import LOG_CHUNK, _read_chunk

    text = "x" + "é" * (LOG_CHUNK // 2 + 10)  # a 2-byte character falls across the chunk's end
    f = io.BytesIO(text.encode())
    got, offset, size = "", 0, None
    while size is None or offset < size:
        part, offset, size = _read_chunk(f, offset, ended=True)
        got += part
    assert got == text and "\ufffd" not in got


def test_a_log_from_another_host_is_read_from_the_object_store(api: Api, tmp_path):
    from millstream.settings import Settings
    from millstream.store import objects

    with api.harness.store.read() as conn:
        from millstream.store import runs as runs_q

        run_pk = runs_q.get_run(conn, REF, api.run_id)["id"]
    store_url = str(tmp_path / "objects")
    local = api.harness.home / "logs"
    from millstream.worker.runner import log_path

    objects.copy_file(
        log_path(local, REF, api.run_id, "process_file", 1, 1),
        objects.log_url(store_url, REF, run_pk, "process_file", 1, 1),
    )
    env = {"MILLSTREAM_HOME": str(tmp_path / "elsewhere"), "MILLSTREAM__RESULTS__OBJECT_STORE_URL": store_url}
    from millstream.api import create_app

    other = TestClient(
        create_app(Settings.load(environ=env), api.harness.store), headers=dict(api.admin.headers)
    )
    url = f"/api/v1/dags/{REF}/runs/{q(api.run_id)}/tasks/process_file/logs/1"
    log = ok(other.get(url, params={"map_index": 1}))
    assert log["found"] and log["complete"] and "Processing file_002.csv" in log["content"]
    missing = ok(other.get(url, params={"map_index": 2}))  # no copy of this one
    assert not missing["found"] and missing["complete"] and missing["content"] == ""
    env["MILLSTREAM__RESULTS__OBJECT_STORE_URL"] = "http://127.0.0.1:9/unreachable"
    down = TestClient(
        create_app(Settings.load(environ=env), api.harness.store), headers=dict(api.admin.headers)
    )
    assert ok(down.get(url, params={"map_index": 1}))["found"] is False  # not a 500


def test_log_urls_stay_apart_and_inside_the_store():
    from millstream.store.objects import log_url

    a = log_url("/base", "..", 7, "..", 0, 1)
    assert "/../" not in a and a.startswith("/base/logs/dag=..")
    assert log_url("/base", "alpha", 1, "t", -1, 1) != log_url("/base", "beta", 1, "t", -1, 1)
