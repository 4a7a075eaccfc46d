"""The Variables and Connections pages as HTML: they render for admins and viewers, only
admins get the forms, and no secret (a sensitive variable's value, a password, a secret
extra value) is ever in the page, not even in a form field's value."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from tests.api.conftest import Api

PASSWORD = "ui-Pass-Word-31337"
EXTRA_SECRET = "ui-extra-Token-4242"
VAR_SECRET = "ui-var-Secret-777"


@pytest.fixture(scope="module", autouse=True)
def _fernet_key() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MILLSTREAM__CORE__FERNET_KEY", Fernet.generate_key().decode())
        yield


def _login(api: Api, username: str, password: str) -> TestClient:
    c = TestClient(api.app)
    assert c.post("/login", data={"username": username, "password": password}).status_code == 200
    return c


@pytest.fixture(scope="module")
def admin(api: Api) -> TestClient:
    return _login(api, "root", "password-1")


@pytest.fixture(scope="module")
def viewer(api: Api) -> TestClient:
    return _login(api, "reader", "password-2")


@pytest.fixture(scope="module")
def secrets(api: Api) -> None:
    for key, value in (("ui_region", "north-eu"), ("ui_api_token", VAR_SECRET)):
        assert api.admin.put(f"/api/v1/variables/{key}", json={"value": value}).status_code == 200
    body = {
        "conn_type": "postgres",
        "host": "ui-db.example.com",
        "login": "ui-user",
        "password": PASSWORD,
        "port": 5433,
        "extra": {"sslmode": "require", "auth_token": EXTRA_SECRET},
        "description": "<b>bold</b> warehouse",
    }
    assert api.admin.put("/api/v1/connections/ui_pg", json=body).status_code == 200


def test_both_pages_render_for_admins_and_viewers_and_as_fragments(api: Api, admin, viewer, secrets):
    for path in ("/variables", "/connections"):
        for who in (admin, viewer):
            page = who.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert "<html" in page.text
            assert f'<a href="{path}" class="on">' in page.text  # in the nav, and marked
            fragment = who.get(f"{path}?fragment=1")
            assert fragment.status_code == 200 and "<html" not in fragment.text, path
    assert 'href="/variables"' in admin.get("/").text and 'href="/connections"' in admin.get("/").text


def test_the_pages_show_the_data(api: Api, admin, secrets):
    variables = admin.get("/variables").text
    assert 'data-variable="ui_region"' in variables and "north-eu" in variables
    assert 'data-variable="ui_api_token"' in variables
    connections = admin.get("/connections").text
    assert 'data-connection="ui_pg"' in connections
    assert "ui-db.example.com" in connections and "ui-user" in connections and "5433" in connections
    assert "&lt;b&gt;bold&lt;/b&gt; warehouse" in connections and "<b>bold</b>" not in connections


def test_no_secret_is_in_any_page(api: Api, admin, viewer, secrets):
    for who in (admin, viewer):
        for path in ("/variables", "/variables?fragment=1", "/connections", "/connections?fragment=1"):
            html = who.get(path).text
            for secret in (PASSWORD, EXTRA_SECRET, VAR_SECRET):
                assert secret not in html, (path, secret)
    page = admin.get("/connections").text
    # the edit form's password field has no value: empty keeps the stored password
    fields = [part.split(">", 1)[0] for part in page.split('name="password"')[1:]]
    assert fields and all("value=" not in f for f in fields), fields


def test_only_admins_get_the_forms(api: Api, admin, viewer, secrets):
    for path, marks in (
        ("/variables", ('data-open="new-variable"', "DELETE /api/v1/variables/ui_region", "edit-variable-")),
        ("/connections", ('data-open="new-connection"', "DELETE /api/v1/connections/ui_pg", "/test")),
    ):
        admin_page, viewer_page = admin.get(path).text, viewer.get(path).text
        for mark in marks:
            assert mark in admin_page, (path, mark)
            assert mark not in viewer_page, (path, mark)
    assert 'data-api="PUT /api/v1/variables/{key}"' in admin.get("/variables").text


def test_the_pages_need_a_login(api: Api):
    anon = TestClient(api.app)
    for path in ("/variables", "/connections"):
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        assert anon.get(f"{path}?fragment=1", follow_redirects=False).status_code == 401
