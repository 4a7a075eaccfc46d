"""A user's tour in a real browser: log in, trigger the reference DAG, watch it finish in
the grid without reloading, open the mapped task's instances, read a log, start a
backfill and watch its progress; a viewer sees no buttons that change things."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.ui.conftest import Server

WAIT = 60_000  # ms: a deadline for what the scheduler does, not a sleep


def login(page: Page, server: Server, user: str = "admin", password: str | None = None) -> None:
    page.goto(server.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password or server.password)
    page.click("button[type=submit]")
    expect(page).to_have_url(server.url + "/")


def test_a_wrong_password_stays_on_the_login_page(browser, server: Server):
    page = browser.new_page()
    page.goto(server.url + "/dags/process_daily_files")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("Wrong username or password.")
    page.close()


def test_trigger_watch_open_instances_read_log_and_backfill(browser, server: Server, shots: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 820})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, server)
    row = page.locator("tr[data-dag=process_daily_files]")
    expect(row).to_be_visible()
    expect(page.locator("tr[data-dag=daily_report]")).to_be_visible()

    # Trigger from the grid page, with a conf, through the dialog.
    page.goto(server.url + "/dags/process_daily_files")
    page.click("button[data-open]")
    page.fill("dialog textarea[name=conf]", '{"source": "browser"}')
    page.fill("dialog input[name=run_id]", "from_the_browser")
    page.click("dialog button[type=submit]")
    expect(page).to_have_url(re.compile(r"/runs/from_the_browser$"))
    expect(page.locator("pre.conf")).to_contain_text('"source": "browser"')

    # Watch it finish in the grid: the page is not reloaded, its fragment is.
    page.goto(server.url + "/dags/process_daily_files")
    page.evaluate("window.__not_reloaded = true")
    head = page.locator("a.runhead[data-run=from_the_browser]")
    expect(head).to_have_class(re.compile(r"\bs-success\b"), timeout=WAIT)
    assert page.evaluate("window.__not_reloaded") is True
    cell = page.locator("tr[data-task=process_file] a.cell.mapped").last
    expect(cell).to_contain_text("3")

    # The mapped task's row expands to its instances.
    cell.click()
    panel = page.locator("#panel")
    expect(panel.locator("tr[data-map-index]")).to_have_count(3)
    expect(panel).to_contain_text("3 instances")
    page.screenshot(path=str(shots / "grid.png"), full_page=True)

    # An instance's log.
    panel.locator("tr[data-map-index='2'] a").click()
    expect(page.locator("pre.log")).to_contain_text("Processing file_003.csv", timeout=WAIT)
    expect(page.locator("pre.log")).to_have_class(re.compile(r"\bcomplete\b"))
    page.screenshot(path=str(shots / "task-log.png"), full_page=True)

    # The run's page with its Gantt chart, and the graph.
    page.goto(server.url + "/dags/process_daily_files/runs/from_the_browser")
    expect(page.locator("svg.gantt rect.gbar")).to_have_count(3)
    page.screenshot(path=str(shots / "run-gantt.png"), full_page=True)
    page.goto(server.url + "/dags/process_daily_files/graph")
    expect(page.locator("g.node.mapped")).to_have_count(1)
    page.goto(server.url + "/dags/temp_workspace/graph")
    expect(page.locator("g.node.n-setup")).to_have_count(1)
    expect(page.locator("g.node.n-teardown")).to_have_count(1)
    page.screenshot(path=str(shots / "graph-setup-teardown.png"), full_page=True)

    # A backfill from the form: dry run first, then for real, and its progress.
    page.goto(server.url + "/backfills")
    page.click("button[data-open=new-backfill]")
    page.select_option("select[name=dag_id]", "daily_report")
    page.fill("input[name=from_date]", "2025-01-01")
    page.fill("input[name=to_date]", "2025-01-06")
    page.fill("input[name=max_active_runs]", "2")
    page.click("button[data-dry-run]")
    expect(page.locator("[data-plan]")).to_have_text("6 run(s) to create, 0 to rerun, 0 left alone")
    page.click("#new-backfill button[type=submit]")
    expect(page).to_have_url(re.compile(r"/backfills/\d+$"))
    progress = page.locator(".big-progress .progress-text")
    expect(progress).to_contain_text("6/6 done", timeout=WAIT)
    page.screenshot(path=str(shots / "backfill.png"), full_page=True)

    page.goto(server.url + "/")
    expect(page.locator("tr[data-dag=daily_report] .dots a")).to_have_count(5)
    page.screenshot(path=str(shots / "dags.png"), full_page=True)
    assert errors == []
    page.close()


def test_mapped_instances_show_their_labels(browser, server: Server, shots: Path):
    server.cli("dags", "trigger", "labelled_files", "--run-id", "labelled")
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    login(page, server)
    page.goto(server.url + "/dags/labelled_files/runs/labelled/tasks/load/instances")
    rows = page.locator("tr[data-map-index]")
    expect(rows).to_have_count(4, timeout=WAIT)
    expect(page.locator("tr[data-map-index='1']")).to_contain_text("south.csv")
    expect(page.locator("tr[data-map-index='3'] .state")).to_have_text("success", timeout=WAIT)
    page.fill("form.search input[name=q]", "SOUTH")
    page.press("form.search input[name=q]", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-map-index", "1")
    page.close()


def test_assets_page_and_emitting_an_event(browser, server: Server, shots: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    login(page, server)
    page.goto(server.url + "/assets")
    expect(page.locator("svg.graph g.n-asset")).to_have_count(2)
    page.goto(server.url + "/asset?name=incoming_csv")
    page.click("button[data-open=emit]")
    page.fill("#emit textarea[name=extra]", '{"path": "manual.csv"}')
    page.click("#emit button[type=submit]")
    expect(page.locator("table.events")).to_contain_text("manual.csv")
    expect(page.locator("table.events")).to_contain_text("external")
    page.goto(server.url + "/assets")
    page.screenshot(path=str(shots / "assets.png"), full_page=True)
    page.close()


def test_a_viewer_sees_no_buttons_that_change_things(browser, server: Server):
    server.cli("users", "create", "watcher", "--role", "viewer", "--password", "watch-only-1")
    page = browser.new_page()
    login(page, server, "watcher", "watch-only-1")
    expect(page.locator("tr[data-dag=process_daily_files]")).to_be_visible()
    expect(page.locator("button.toggle")).to_have_count(0)
    page.goto(server.url + "/dags/process_daily_files")
    expect(page.locator("button[data-open]")).to_have_count(0)
    page.goto(server.url + "/backfills")
    expect(page.locator("button[data-open=new-backfill]")).to_have_count(0)
    page.close()


def test_a_running_tasks_log_is_followed_live(browser, server: Server):
    server.cli("dags", "trigger", "talkative", "--run-id", "live")
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    login(page, server)
    page.goto(server.url + "/dags/talkative/runs/live/tasks/talk")
    log = page.locator("pre.log")
    expect(log).to_contain_text("first line", timeout=WAIT)  # the page may open before the task starts
    expect(log).to_have_class(re.compile(r"\bfollowing\b"))
    expect(log).not_to_contain_text("second line")
    page.evaluate("window.__not_reloaded = true")
    (server.home / "talk-gate").touch()
    expect(log).to_contain_text("second line", timeout=WAIT)
    expect(log).to_have_class(re.compile(r"\bcomplete\b"), timeout=WAIT)
    expect(page.locator("dl.facts .state")).to_have_text("success", timeout=WAIT)
    assert page.evaluate("window.__not_reloaded") is True
    assert log.inner_text().count("first line") == 1  # followed from an offset, not re-sent
    page.close()


def test_a_task_group_folds_in_the_grid(browser, server: Server):
    server.cli("dags", "trigger", "grouped", "--run-id", "g")
    page = browser.new_page()
    login(page, server)
    page.goto(server.url + "/dags/grouped")
    members = page.locator("tr[data-task^='clean.']")
    expect(members).to_have_count(2, timeout=WAIT)
    toggle = page.locator("[data-group-toggle=clean]")
    toggle.click()
    expect(members.first).to_be_hidden()
    expect(toggle).to_have_text("\u25b8 clean")
    toggle.click()
    expect(members.first).to_be_visible()
    page.close()


def test_the_rendered_tab_shows_what_the_attempt_ran_with_secrets_masked(browser, server: Server):
    server.cli("dags", "trigger", "templated", "--run-id", "r1")
    page = browser.new_page()
    login(page, server)
    page.goto(server.url + "/dags/templated/runs/r1/tasks/say")
    expect(page.locator("dl.facts .state")).to_have_text("success", timeout=WAIT)
    page.get_by_role("link", name="Rendered").click()
    table = page.locator("table.rendered")
    expect(table).to_contain_text("echo region=eu run=r1", timeout=WAIT)
    expect(table.locator("tr", has_text="env")).to_contain_text('"API_TOKEN": "***"')
    expect(table.locator("tr", has_text="env")).to_contain_text('"PLAIN": "eu"')
    expect(table).not_to_contain_text("tok-")
    page.get_by_role("link", name="Log").click()
    expect(page.locator("pre.log")).to_contain_text("region=eu run=r1", timeout=WAIT)
    page.close()
