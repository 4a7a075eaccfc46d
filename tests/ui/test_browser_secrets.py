"""The Variables page in a real browser: an admin adds a variable through the form, and
a sensitive one shows as *** in the page while tasks (the CLI here) read the value."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.ui.conftest import Server
from tests.ui.test_browser import login


def test_add_a_variable_through_the_form(browser, server: Server):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    login(page, server)
    page.click("header nav a[href='/variables']")
    expect(page).to_have_url(server.url + "/variables")

    for key, value in (("from_the_browser", "hello from a form"), ("browser_api_token", "tok-Typed-123")):
        page.click("button[data-open=new-variable]")
        page.fill("#new-variable input[name=key]", key)
        page.fill("#new-variable textarea[name=value]", value)
        page.fill("#new-variable input[name=description]", "typed in the browser")
        page.click("#new-variable button[type=submit]")
        expect(page.locator(f"tr[data-variable={key}]")).to_contain_text("typed in the browser")

    expect(page.locator("tr[data-variable=from_the_browser]")).to_contain_text("hello from a form")
    expect(page.locator("tr[data-variable=browser_api_token]")).to_contain_text("***")
    assert "tok-Typed-123" not in page.content()
    assert server.cli("variables", "get", "browser_api_token").stdout.strip() == "tok-Typed-123"
    assert errors == []
    page.close()
