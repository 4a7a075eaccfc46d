"""The ``/api/v2`` tests share ``tests/api``'s store filled by a real scheduler, and add
JWT-authenticated clients, as Airflow's clients authenticate."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Api, api  # noqa: F401 - the module fixture this one builds on


@dataclass
class V2:
    base: Api
    admin: TestClient  # JWT of the admin "root"
    viewer: TestClient  # JWT of the viewer "reader"
    anon: TestClient


def login(client: TestClient, username: str, password: str) -> str:
    r = client.post("/auth/token", json={"username": username, "password": password})
    assert r.status_code == 201, r.text
    return str(r.json()["access_token"])


@pytest.fixture(scope="module")
def v2(api: Api) -> V2:  # noqa: F811
    anon = TestClient(api.app)
    admin = TestClient(api.app, headers={"Authorization": f"Bearer {login(anon, 'root', 'password-1')}"})
    viewer = TestClient(api.app, headers={"Authorization": f"Bearer {login(anon, 'reader', 'password-2')}"})
    return V2(api, admin, viewer, anon)
