"""Logging in at ``POST /auth/token`` and the answers to bad credentials, as Airflow 3.3.2
gives them (checked against its api-server with the simple auth manager)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from millstream.api import jwt_tokens
from millstream.store import users as users_q

from .conftest import V2


def test_login_json_and_form_give_a_jwt_both_apis_take(v2: V2) -> None:
    r = v2.anon.post("/auth/token", data={"username": "root", "password": "password-1"})
    assert r.status_code == 201
    token = r.json()["access_token"]
    assert token.count(".") == 2
    headers = {"Authorization": f"Bearer {token}"}
    assert v2.anon.get("/api/v1/me", headers=headers).json()["username"] == "root"
    r = v2.anon.post("/auth/token/cli", json={"username": "reader", "password": "password-2"})
    assert r.status_code == 201
    me = v2.anon.get("/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["role"] == "viewer"


def test_bad_logins(v2: V2) -> None:
    wrong = v2.anon.post("/auth/token", json={"username": "root", "password": "nope-nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid credentials"})
    empty = v2.anon.post("/auth/token", json={"username": "", "password": ""})
    assert (empty.status_code, empty.json()) == (400, {"detail": "Username and password must be provided"})
    missing = v2.anon.post("/auth/token", json={"username": "root"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["password"]
    xml = v2.anon.post("/auth/token", content=b"<a/>", headers={"content-type": "text/xml"})
    assert (xml.status_code, xml.json()) == (415, {"detail": "Unsupported Media Type"})
    assert v2.anon.get("/auth/token").status_code == 403


def test_token_answers_as_airflow(v2: V2) -> None:
    assert v2.anon.get("/api/v2/dags").json() == {"detail": "Not authenticated"}
    assert v2.anon.get("/api/v2/dags").status_code == 401
    garbage = v2.anon.get("/api/v2/dags", headers={"Authorization": "Bearer a.b.c"})
    assert (garbage.status_code, garbage.json()) == (403, {"detail": "Invalid JWT token"})
    store = v2.base.harness.store
    with store.begin() as conn:
        user = users_q.get_user(conn, "root")
        old = jwt_tokens.issue(conn, user, 60, now=datetime.now(UTC) - timedelta(hours=1))
    expired = v2.anon.get("/api/v2/dags", headers={"Authorization": f"Bearer {old}"})
    assert (expired.status_code, expired.json()) == (401, {"detail": "Token Expired"})
    assert v2.anon.get("/api/v1/dags", headers={"Authorization": f"Bearer {old}"}).status_code == 401


def test_a_new_password_voids_the_jwts(v2: V2) -> None:
    anon = TestClient(v2.base.app)
    with v2.base.harness.store.begin() as conn:
        users_q.create_user(conn, "temp", "password-3", "viewer")
    r = anon.post("/auth/token", json={"username": "temp", "password": "password-3"})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert anon.get("/api/v2/version", headers=headers).status_code == 200
    assert anon.get("/api/v1/me", headers=headers).status_code == 200
    with v2.base.harness.store.begin() as conn:
        users_q.set_password(conn, "temp", "password-4")
    assert anon.get("/api/v1/me", headers=headers).status_code == 401


def test_version_and_health_open_to_all(v2: V2) -> None:
    version = v2.anon.get("/api/v2/version")
    assert version.status_code == 200 and set(version.json()) == {"version", "git_version"}
    health = v2.anon.get("/api/v2/monitor/health").json()
    assert health["metadatabase"] == {"status": "healthy"}
    assert health["scheduler"]["status"] == "healthy"


def test_v2_openapi_holds_v2_only_and_v1_keeps_its_own(v2: V2) -> None:
    spec = v2.anon.get("/api/v2/openapi.json").json()
    assert all(p.startswith(("/api/v2", "/auth/token")) for p in spec["paths"])
    v1 = v2.base.admin.get("/api/v1/openapi.json").json()
    assert not any(p.startswith("/api/v2") for p in v1["paths"])
