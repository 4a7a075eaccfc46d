"""The web UI's pages as HTML: each renders for admins and viewers, follows the data,
links where it should and never lists every instance of a wide map."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Api

REF = "process_daily_files"


@pytest.fixture(scope="module")
def admin(api: Api) -> TestClient:
    c = TestClient(api.app)
    assert c.post("/login", data={"username": "root", "password": "password-1"}).status_code == 200
    return c


@pytest.fixture(scope="module")
def viewer(api: Api) -> TestClient:
    c = TestClient(api.app)
    assert c.post("/login", data={"username": "reader", "password": "password-2"}).status_code == 200
    return c


def pages(api: Api) -> list[str]:
    r = quote(api.run_id, safe="")
    return [
        "/",
        f"/dags/{REF}",
        f"/dags/{REF}/graph",
        f"/dags/{REF}/runs/{r}",
        f"/dags/{REF}/runs/{r}/graph",
        f"/dags/{REF}/runs/{r}/tasks/process_file/instances",
        f"/dags/{REF}/runs/{r}/tasks/process_file?map_index=1",
        f"/dags/{REF}/runs/{r}/tasks/list_files",
        "/assets",
        "/asset?name=orders",
        "/backfills",
    ]


def test_every_page_renders_for_admins_and_viewers_and_their_fragments_too(api: Api, admin, viewer):
    for path in pages(api):
        for who in (admin, viewer):
            page = who.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert "<html" in page.text
            sep = "&" if "?" in path else "?"
            fragment = who.get(f"{path}{sep}fragment=1")
            assert fragment.status_code == 200 and "<html" not in fragment.text, path
    # admin-only controls
    assert 'data-open="trigger-' in admin.get(f"/dags/{REF}").text
    assert 'data-open="trigger-' not in viewer.get(f"/dags/{REF}").text
    assert "Mark failed" in admin.get(f"/dags/{REF}/runs/{quote(api.run_id, safe='')}").text
    assert "Mark failed" not in viewer.get(f"/dags/{REF}/runs/{quote(api.run_id, safe='')}").text


def test_pages_need_a_login_and_unknown_things_are_html_404s(api: Api, admin):
    anon = TestClient(api.app)
    r = anon.get(f"/dags/{REF}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=%2Fdags%2F{REF}"
    assert anon.get(f"/dags/{REF}?fragment=1", follow_redirects=False).status_code == 401
    for path in (
        "/dags/nope",
        f"/dags/{REF}/runs/nope",
        "/backfills/12345",
        "/asset?name=nope",
        "/no/such/page",
    ):
        page = admin.get(path)
        assert page.status_code == 404 and "<html" in page.text, path
    assert "has no run &#39;nope&#39;" in admin.get(f"/dags/{REF}/runs/nope").text


def test_login_only_redirects_within_the_site(api: Api):
    for target, expected in (("/assets", "/assets"), ("//evil.example", "/"), ("https://evil.example", "/")):
        c = TestClient(api.app)
        r = c.post(
            "/login",
            data={"username": "root", "password": "password-1", "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == expected


def test_the_grid_pages_runs_and_its_links_keep_the_filter(api: Api, admin):
    for i in range(27):
        api.harness.trigger("with_params", run_id=f"grid_{i:02d}")
    for i in range(27):
        api.harness.wait_run("with_params", f"grid_{i:02d}")
    first = admin.get("/dags/with_params").text
    assert len(re.findall(r'class="runhead ', first)) == 25
    older = re.search(r'href="(/dags/with_params\?offset=25[^"]*)"', first).group(1)
    assert "Macro" not in older and older.endswith("&amp;state=")
    second = admin.get(older.replace("&amp;", "&")).text
    assert 2 <= len(re.findall(r'class="runhead ', second)) <= 4
    only_success = admin.get("/dags/with_params?state=success").text
    assert "state=success" in re.search(r'href="(/dags/with_params\?offset=25[^"]*)"', only_success).group(1)


def test_the_graph_links_a_mapped_task_to_its_instances(api: Api, admin):
    page = admin.get(f"/dags/{REF}/runs/{quote(api.run_id, safe='')}/graph").text
    assert re.search(r'href="/dags/process_daily_files/runs/[^"]+/tasks/process_file/instances"', page)
    assert re.search(r'href="/dags/process_daily_files/runs/[^"]+/tasks/summarize"', page)


def test_a_run_id_with_a_slash_is_refused(api: Api):
    r = api.admin.post(f"/api/v1/dags/{REF}/runs", json={"run_id": "a/b"})
    assert r.status_code == 422 and "'/'" in r.json()["detail"]


def test_user_text_is_escaped(api: Api, admin):
    evil = "<img src=x onerror=alert(1)>"
    made = api.admin.post(f"/api/v1/dags/{REF}/runs", json={"run_id": evil, "conf": {"x": "</pre><b>"}})
    assert made.status_code == 201, made.text
    page = admin.get(f"/dags/{REF}").text
    assert evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    run = admin.get(f"/dags/{REF}/runs/{quote(evil, safe='')}").text
    assert "</pre><b>" not in run and evil not in run


def test_a_cleared_runs_gantt_keeps_earlier_bars_on_the_chart():
    from datetime import UTC, datetime, timedelta

    from millstream.api.graph import gantt

    t = datetime(2025, 1, 1, tzinfo=UTC)
    spans = [
        {"task_id": "a", "start_date": t, "end_date": t + timedelta(seconds=10), "instances": 1},
        {"task_id": "b", "start_date": t + timedelta(hours=1), "end_date": None, "instances": 1},
    ]
    # the run's start moved to the clear, an hour after a ran
    bars, total, _ = gantt(spans, ["a", "b"], {}, t + timedelta(hours=1), t + timedelta(hours=1, seconds=5))
    assert all(b.x >= 0 and b.x + b.width <= 761 for b in bars)
    assert total == pytest.approx(3605)


def test_instances_are_found_by_map_index_or_label(api: Api, admin):
    r = quote(api.run_id, safe="")
    base = f"/dags/{REF}/runs/{r}/tasks/process_file/instances"
    assert len(re.findall(r"data-map-index=", admin.get(base).text)) == 3
    one = admin.get(base, params={"q": "2"}).text
    assert re.findall(r'data-map-index="(\d+)"', one) == ["2"]
    assert re.findall(r'data-map-index="(\d+)"', admin.get(base, params={"q": "no such label"}).text) == []
    api_page = api.admin.get(f"/api/v1/dags/{REF}/runs/{r}/tasks", params={"label": "%"}).json()
    assert api_page["total"] == 0  # % is a character here, not a wildcard
    assert admin.get(base, params={"q": "\u00b2"}).status_code == 200  # a digit to isdigit(), not to int()
    found = api.admin.get(
        f"/api/v1/dags/{REF}/runs/{r}/tasks", params={"search": "1", "task_id": "process_file"}
    )
    assert [t["map_index"] for t in found.json()["items"]] == [1]


def test_task_groups_are_grouped_in_the_grid(api: Api, admin):
    from tests.ui.conftest import GROUPED

    api.harness.write_dag("grouped.py", GROUPED)
    api.harness.wait_parsed("grouped")
    api.harness.wait_run("grouped", api.harness.trigger("grouped"))
    page = admin.get("/dags/grouped").text
    assert page.count('data-group-toggle="clean"') == 1
    assert re.findall(r'data-task="([^"]+)" data-groups="clean"', page) == ["clean.a", "clean.b"]


def test_grid_rows_keep_groups_together_and_nest_them():
    from types import SimpleNamespace as T

    from millstream.api.graph import grid_rows

    tasks = [
        T(task_id="outer.inner.b", group_id="outer.inner"),
        T(task_id="g.a", group_id="g"),
        T(task_id="y", group_id=None),
        T(task_id="outer.c", group_id="outer"),
        T(task_id="g.z", group_id="g"),
    ]
    rows = [(r.kind, r.id, r.depth, r.groups) for r in grid_rows(tasks)]
    assert rows == [
        ("group", "outer", 0, []),
        ("group", "outer.inner", 1, ["outer"]),
        ("task", "outer.inner.b", 2, ["outer", "outer.inner"]),
        ("task", "outer.c", 1, ["outer"]),
        ("group", "g", 0, []),
        ("task", "g.a", 1, ["g"]),
        ("task", "g.z", 1, ["g"]),
        ("task", "y", 0, []),
    ]
