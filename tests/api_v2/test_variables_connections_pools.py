"""``/api/v2`` Variables, Connections and Pools as Airflow 3.3.2 answers them: paths, bodies,
status codes and ``detail`` texts (its ``core_api/routes/public/{variables,connections,pools}.py``),
secrets masked as its secrets masker masks them, and the bulk ``PATCH`` on each collection."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_client.client.models import (
    BulkResponse,
    ConnectionCollectionResponse,
    ConnectionResponse,
    PoolCollectionResponse,
    PoolResponse,
    VariableCollectionResponse,
    VariableResponse,
)

from millstream.store import secret_values as sv

from .conftest import V2

V = "/api/v2/variables"
C = "/api/v2/connections"
P = "/api/v2/pools"
TEST_OFF = (
    "Testing connections is disabled in Airflow configuration. Contact your deployment admin to enable it."
)


def stored_var(v2: V2, key: str) -> str | None:
    with v2.base.harness.store.read() as conn:
        return sv.get_variable(conn, key)


def stored_conn(v2: V2, conn_id: str) -> sv.Connection | None:
    with v2.base.harness.store.read() as conn:
        return sv.get_connection(conn, conn_id)


# -- variables -----------------------------------------------------------------------------


def test_variable_crud_and_airflow_texts(v2: V2) -> None:
    r = v2.admin.post(V, json={"key": "v_region", "value": "eu", "description": "where"})
    assert r.status_code == 201, r.text
    assert r.json() == {
        "key": "v_region",
        "value": "eu",
        "description": "where",
        "is_encrypted": True,
        "team_name": None,
    }
    VariableResponse.from_dict(r.json())
    again = v2.admin.post(V, json={"key": "v_region", "value": "x"})
    assert (again.status_code, again.json()) == (
        409,
        {"detail": "The Variable with key: `v_region` already exists"},
    )
    assert v2.viewer.get(f"{V}/v_region").json()["value"] == "eu"
    missing = v2.viewer.get(f"{V}/nope")
    assert (missing.status_code, missing.json()) == (
        404,
        {"detail": "The Variable with key: `nope` was not found"},
    )

    r = v2.admin.patch(f"{V}/v_region", json={"key": "v_region", "value": {"zone": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["value"] == '{"zone": 2}' and r.json()["description"] == "where"
    assert stored_var(v2, "v_region") == '{\n  "zone": 2\n}'  # Airflow's indent=2 JSON
    r = v2.admin.patch(
        f"{V}/v_region",
        params={"update_mask": "description"},
        json={"key": "v_region", "value": "ignored", "description": None},
    )
    assert r.json()["description"] is None and stored_var(v2, "v_region") == '{\n  "zone": 2\n}'
    bad = v2.admin.patch(
        f"{V}/v_region", params={"update_mask": ["key"]}, json={"key": "v_region", "value": "1"}
    )
    assert bad.json() == {
        "detail": "Update not allowed: the following fields are immutable and cannot be modified: {'key'}"
    }
    other = v2.admin.patch(f"{V}/v_region", json={"key": "other", "value": "1"})
    assert (other.status_code, other.json()) == (
        400,
        {"detail": "Invalid body, key from request body doesn't match uri parameter"},
    )
    assert v2.admin.patch(f"{V}/nope", json={"key": "nope", "value": "1"}).status_code == 404

    assert v2.admin.delete(f"{V}/v_region").status_code == 204
    gone = v2.admin.delete(f"{V}/v_region")
    assert (gone.status_code, gone.json()) == (
        404,
        {"detail": "The Variable with key: `v_region` was not found"},
    )


def test_variable_list_filters_orders_and_pages(v2: V2) -> None:
    for key in ("lst_a", "lst_B", "lst_c", "other_lst"):
        assert v2.admin.post(V, json={"key": key, "value": key, "description": key[-1]}).status_code == 201
    body = v2.viewer.get(V, params={"variable_key_pattern": "LST"}).json()
    VariableCollectionResponse.from_dict(body)
    assert [v["key"] for v in body["variables"]] == ["lst_B", "lst_a", "lst_c", "other_lst"]
    assert body["total_entries"] == 4
    prefix = v2.viewer.get(V, params={"variable_key_prefix_pattern": "lst_", "order_by": "-key"}).json()
    assert [v["key"] for v in prefix["variables"]] == ["lst_c", "lst_a", "lst_B"]
    either = v2.viewer.get(V, params={"variable_key_pattern": "lst_a|other", "limit": 1, "offset": 1}).json()
    assert either["total_entries"] == 2 and [v["key"] for v in either["variables"]] == ["other_lst"]
    by_desc = v2.viewer.get(
        V, params={"variable_key_prefix_pattern": "lst", "order_by": ["description"]}
    ).json()
    assert [v["description"] for v in by_desc["variables"]] == ["B", "a", "c"]
    everything = v2.viewer.get(V, params={"variable_key_pattern": "~", "limit": 100}).json()
    assert everything["total_entries"] == v2.viewer.get(V).json()["total_entries"] >= 4
    wrong = v2.viewer.get(V, params={"order_by": "nope"})
    assert (wrong.status_code, wrong.json()) == (
        400,
        {"detail": "Ordering with 'nope' is disallowed or the attribute does not exist on the model"},
    )
    assert v2.viewer.get(V, params={"order_by": "_val"}).status_code == 400


def test_variable_values_are_masked_as_airflow_masks_them(v2: V2) -> None:
    cases = {
        "mask_db_password": ("hunter22", "***"),
        "mask_api-key": ('{"user": "u", "n": 1}', '{"user": "***", "n": 1}'),
        "mask_cfg": (
            '{"token": {"a": "x"}, "l": [1, {"secret": 2}], "ok": "v"}',
            '{"token": {"a": "***"}, "l": [1, {"secret": 2}], "ok": "v"}',
        ),
        "mask_plain": ("just text", "just text"),
    }
    for key, (value, shown) in cases.items():
        r = v2.admin.post(V, json={"key": key, "value": value})
        assert r.json()["value"] == shown, key
        assert v2.viewer.get(f"{V}/{key}").json()["value"] == shown
        assert stored_var(v2, key) == value  # masked in answers only
    listed = {
        v["key"]: v["value"]
        for v in v2.viewer.get(V, params={"variable_key_prefix_pattern": "mask_"}).json()["variables"]
    }
    assert listed == {k: s for k, (_, s) in cases.items()}


def test_variable_bodies_refused(v2: V2) -> None:
    assert v2.admin.post(V, json={"key": "x"}).status_code == 422
    extra = v2.admin.post(V, json={"key": "x", "value": "1", "unknown": 1})
    assert extra.status_code == 422 and extra.json()["detail"][0]["type"] == "extra_forbidden"
    team = v2.admin.post(V, json={"key": "x", "value": "1", "team_name": "t"})
    assert team.status_code == 422 and "multi_team mode is disabled" in team.json()["detail"][0]["msg"]
    spaces = v2.admin.post(V, json={"key": "has space", "value": "1"})
    assert spaces.status_code == 400 and "cannot store the variable key" in spaces.json()["detail"]
    assert v2.admin.post(V, json={"key": "k" * 251, "value": "1"}).status_code == 422


def test_variable_bulk(v2: V2) -> None:
    assert v2.admin.post(V, json={"key": "bulk_old", "value": "1", "description": "keep?"}).status_code == 201
    body = {
        "actions": [
            {
                "action": "create",
                "entities": [{"key": "bulk_old", "value": "2"}, {"key": "bulk_new", "value": "n"}],
            },
            {
                "action": "create",
                "entities": [{"key": "bulk_old", "value": "3"}, {"key": "bulk_skip", "value": "s"}],
                "action_on_existence": "skip",
            },
            {"action": "update", "entities": [{"key": "bulk_nope", "value": "x"}]},
            {
                "action": "update",
                "entities": [
                    {"key": "bulk_old", "value": "4", "description": "d"},
                    {"key": "bulk_nope", "value": "x"},
                ],
                "action_on_non_existence": "skip",
                "update_mask": ["value"],
            },
            {"action": "delete", "entities": ["bulk_skip", "bulk_gone"]},
            {
                "action": "delete",
                "entities": ["bulk_gone", {"key": "bulk_skip", "value": "x"}],
                "action_on_non_existence": "skip",
            },
        ]
    }
    r = v2.admin.patch(V, json=body)
    assert r.status_code == 200, r.text
    BulkResponse.from_dict(r.json())
    assert r.json() == {
        "create": {
            "success": ["bulk_skip"],
            "errors": [
                {"error": "The variables with these keys: {'bulk_old'} already exist.", "status_code": 409}
            ],
        },
        "update": {
            "success": ["bulk_old"],
            "errors": [
                {"error": "The variables with these keys: {'bulk_nope'} were not found.", "status_code": 404}
            ],
        },
        "delete": {
            "success": ["bulk_skip"],
            "errors": [
                {"error": "The variables with these keys: {'bulk_gone'} were not found.", "status_code": 404}
            ],
        },
    }
    assert stored_var(v2, "bulk_old") == "4" and stored_var(v2, "bulk_new") is None
    assert v2.viewer.get(f"{V}/bulk_old").json()["description"] == "keep?"  # not in the mask
    over = v2.admin.patch(
        V,
        json={
            "actions": [
                {
                    "action": "create",
                    "entities": [{"key": "bulk_old", "value": "5"}],
                    "action_on_existence": "overwrite",
                }
            ]
        },
    )
    assert over.json() == {"create": {"success": ["bulk_old"], "errors": []}, "update": None, "delete": None}
    assert v2.viewer.get(f"{V}/bulk_old").json()["description"] is None  # Variable.set replaces it
    # A body that does not validate changes nothing: the whole request is one transaction.
    bad = v2.admin.patch(
        V,
        json={
            "actions": [
                {"action": "create", "entities": [{"key": "bulk_never", "value": "1"}]},
                {"action": "explode", "entities": []},
            ]
        },
    )
    assert bad.status_code == 422 and stored_var(v2, "bulk_never") is None


def test_variable_writes_need_an_admin(v2: V2) -> None:
    for method, path, body in (
        ("post", V, {"key": "vw", "value": "1"}),
        ("patch", f"{V}/vw", {"key": "vw", "value": "1"}),
        ("delete", f"{V}/vw", None),
        ("patch", V, {"actions": []}),
    ):
        r = v2.viewer.request(method, path, json=body)
        assert (r.status_code, r.json()) == (403, {"detail": "Forbidden"}), (method, path)
        assert v2.anon.request(method, path, json=body).status_code == 401
    assert v2.anon.get(V).json() == {"detail": "Not authenticated"}


# -- connections ---------------------------------------------------------------------------


def test_connection_crud_masks_and_merges(v2: V2) -> None:
    extra = {"region": "eu", "api_token": "tok-123456", "nested": {"password": "pw-654321", "n": 1}}
    body = {
        "connection_id": "c_db",
        "conn_type": "postgres",
        "host": "db.internal",
        "login": "me",
        "password": "s3cret-pass",
        "port": 5432,
        "extra": json.dumps(extra),
    }
    r = v2.admin.post(C, json=body)
    assert r.status_code == 201, r.text
    shown = r.json()
    ConnectionResponse.from_dict(shown)
    assert shown == {
        "connection_id": "c_db",
        "conn_type": "postgres",
        "description": None,
        "host": "db.internal",
        "login": "me",
        "schema": None,
        "port": 5432,
        "password": "***",
        "extra": json.dumps({"region": "eu", "api_token": "***", "nested": {"password": "***", "n": 1}}),
        "team_name": None,
    }
    assert v2.viewer.get(f"{C}/c_db").json() == shown
    dup = v2.admin.post(C, json=body)
    assert dup.status_code == 409 and dup.json()["detail"]["reason"] == "Unique constraint violation"
    missing = v2.viewer.get(f"{C}/nope")
    assert missing.json() == {"detail": "The Connection with connection_id: `nope` was not found"}

    # The masked answer sent back keeps the secrets; a changed field is changed.
    edit = {**shown, "host": "db2.internal"}
    edit.pop("team_name")
    r = v2.admin.patch(f"{C}/c_db", json=edit)
    assert r.status_code == 200, r.text
    c = stored_conn(v2, "c_db")
    assert c is not None and c.host == "db2.internal" and c.password == "s3cret-pass"
    assert json.loads(c.extra or "") == extra
    r = v2.admin.patch(
        f"{C}/c_db",
        params={"update_mask": ["login"]},
        json={"connection_id": "c_db", "conn_type": "http", "login": "you"},
    )
    c = stored_conn(v2, "c_db")
    assert c is not None and (c.login, c.conn_type, c.password) == ("you", "postgres", "s3cret-pass")
    r = v2.admin.patch(f"{C}/c_db", json={"connection_id": "c_db", "conn_type": "postgres", "password": None})
    assert r.json()["password"] is None
    other = v2.admin.patch(f"{C}/c_db", json={"connection_id": "zz", "conn_type": "x"})
    assert (other.status_code, other.json()) == (
        400,
        {"detail": "The connection_id in the request body does not match the URL parameter"},
    )
    assert v2.admin.delete(f"{C}/c_db").status_code == 204
    gone = v2.admin.delete(f"{C}/c_db")
    assert (gone.status_code, gone.json()) == (
        404,
        {"detail": "The Connection with connection_id: `c_db` was not found"},
    )


def test_connection_list_and_bad_bodies(v2: V2) -> None:
    for cid, ctype in (("cl_b", "http"), ("cl_a", "sqlite"), ("cl_c", "http")):
        assert v2.admin.post(C, json={"connection_id": cid, "conn_type": ctype}).status_code == 201
    body = v2.viewer.get(
        C, params={"connection_id_pattern": "cl_", "order_by": ["conn_type", "-connection_id"]}
    ).json()
    ConnectionCollectionResponse.from_dict(body)
    assert [c["connection_id"] for c in body["connections"]] == ["cl_c", "cl_b", "cl_a"]
    assert v2.viewer.get(C, params={"connection_id_prefix_pattern": "cl_a|cl_b"}).json()["total_entries"] == 2
    not_json = v2.admin.post(C, json={"connection_id": "cx", "conn_type": "http", "extra": "nope"})
    assert not_json.status_code == 422
    assert "encountered non-JSON in `extra` field" in not_json.json()["detail"][0]["msg"]
    assert v2.admin.post(C, json={"connection_id": "bad id", "conn_type": "http"}).status_code == 422
    assert v2.admin.post(C, json={"connection_id": "cx"}).status_code == 422
    assert v2.admin.post(C, json={"connection_id": "cx", "conn_type": ""}).status_code == 400
    assert v2.viewer.post(C, json={"connection_id": "cx", "conn_type": "http"}).status_code == 403


def test_connection_bulk(v2: V2) -> None:
    assert (
        v2.admin.post(
            C, json={"connection_id": "cb_old", "conn_type": "http", "password": "old-pass"}
        ).status_code
        == 201
    )
    r = v2.admin.patch(
        C,
        json={
            "actions": [
                {"action": "create", "entities": [{"connection_id": "cb_old", "conn_type": "http"}]},
                {
                    "action": "create",
                    "entities": [
                        {"connection_id": "cb_old", "conn_type": "http", "host": "h"},
                        {"connection_id": "cb_new", "conn_type": "http"},
                    ],
                    "action_on_existence": "overwrite",
                },
                {
                    "action": "update",
                    "entities": [
                        {"connection_id": "cb_old", "conn_type": "http", "password": "***", "login": "l"}
                    ],
                },
                {"action": "update", "entities": [{"connection_id": "cb_nope", "conn_type": "http"}]},
                {"action": "delete", "entities": ["cb_new", "cb_nope"], "action_on_non_existence": "skip"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "create": {
            "success": ["cb_old", "cb_new"],
            "errors": [
                {
                    "error": "The connections with these connection_ids: {'cb_old'} already exist.",
                    "status_code": 409,
                }
            ],
        },
        "update": {
            "success": ["cb_old"],
            "errors": [
                {
                    "error": "The connections with these connection_ids: {'cb_nope'} were not found.",
                    "status_code": 404,
                }
            ],
        },
        "delete": {"success": ["cb_new"], "errors": []},
    }
    c = stored_conn(v2, "cb_old")
    assert c is not None and (c.host, c.login, c.password) == ("h", "l", "old-pass")
    assert stored_conn(v2, "cb_new") is None


@pytest.fixture
def testing_on(v2: V2) -> Iterator[None]:
    app = v2.base.app
    before = app.state.settings  # type: ignore[attr-defined]
    app.state.settings = dataclasses.replace(before, test_connection="enabled")  # type: ignore[attr-defined]
    try:
        yield
    finally:
        app.state.settings = before  # type: ignore[attr-defined]


def test_connection_test_is_off_by_default(v2: V2) -> None:
    body = {"connection_id": "t1", "conn_type": "sqlite", "host": "/tmp/x.db"}
    r = v2.admin.post(f"{C}/test", json=body)
    assert (r.status_code, r.json()) == (403, {"detail": TEST_OFF})
    assert v2.admin.post(f"{C}/enqueue-test", json=body).json() == {"detail": TEST_OFF}
    assert v2.viewer.post(f"{C}/test", json=body).json() == {"detail": "Forbidden"}


def test_connection_test_when_enabled(v2: V2, testing_on: None, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    ok = v2.admin.post(
        f"{C}/test", json={"connection_id": "t_sqlite", "conn_type": "sqlite", "host": str(db)}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] is True
    no_hook = v2.admin.post(f"{C}/test", json={"connection_id": "t_x", "conn_type": "nohook"}).json()
    assert no_hook["status"] is False and "no hook for conn_type" in no_hook["message"]
    # The stored password is lent only to the stored host.
    assert (
        v2.admin.post(
            C,
            json={
                "connection_id": "t_stored",
                "conn_type": "http",
                "host": "a.example",
                "password": "pw-secret",
            },
        ).status_code
        == 201
    )
    moved = v2.admin.post(
        f"{C}/test", json={"connection_id": "t_stored", "conn_type": "http", "host": "evil.example"}
    )
    assert moved.status_code == 400 and "differs from the stored connection" in moved.json()["detail"]
    queued = v2.admin.post(f"{C}/enqueue-test", json={})
    assert queued.status_code == 400 and "cannot queue" in queued.json()["detail"]


def test_default_connections_refused(v2: V2) -> None:
    r = v2.admin.post(f"{C}/defaults")
    assert r.status_code == 400 and "no default connections" in r.json()["detail"]
    assert v2.viewer.post(f"{C}/defaults").status_code == 403


# -- pools ---------------------------------------------------------------------------------


def test_pool_answers_and_default_pool_rules(v2: V2) -> None:
    r = v2.viewer.get(f"{P}/default_pool")
    assert r.status_code == 200
    pool = PoolResponse.from_dict(r.json())
    assert pool is not None and pool.include_deferred is False and pool.team_name is None
    assert pool.open_slots == pool.slots - pool.occupied_slots
    assert pool.occupied_slots == pool.running_slots + pool.queued_slots
    listed = v2.viewer.get(P).json()
    PoolCollectionResponse.from_dict(listed)
    assert "default_pool" in [p["name"] for p in listed["pools"]]
    no = v2.admin.delete(f"{P}/default_pool")
    assert (no.status_code, no.json()) == (400, {"detail": "Default Pool can't be deleted"})
    unmasked = v2.admin.patch(f"{P}/default_pool", json={"slots": 200})
    assert (unmasked.status_code, unmasked.json()) == (
        400,
        {"detail": "Only slots and included_deferred can be modified on Default Pool"},
    )
    slots = pool.slots
    ok = v2.admin.patch(f"{P}/default_pool", params={"update_mask": "slots"}, json={"slots": slots + 1})
    assert ok.status_code == 200 and ok.json()["slots"] == slots + 1
    v2.admin.patch(f"{P}/default_pool", params={"update_mask": "slots"}, json={"slots": slots})


def test_pool_crud(v2: V2) -> None:
    r = v2.admin.post(P, json={"name": "p_etl", "slots": 3, "description": "etl"})
    assert r.status_code == 201, r.text
    assert r.json() == {
        "name": "p_etl",
        "slots": 3,
        "description": "etl",
        "include_deferred": False,
        "occupied_slots": 0,
        "running_slots": 0,
        "queued_slots": 0,
        "scheduled_slots": 0,
        "open_slots": 3,
        "deferred_slots": 0,
        "team_name": None,
    }
    dup = v2.admin.post(P, json={"name": "p_etl", "slots": 1})
    assert dup.status_code == 409 and dup.json()["detail"]["reason"] == "Unique constraint violation"
    # Airflow checks a patch of another pool whole: without include_deferred and the name it is a 422.
    partial = v2.admin.patch(f"{P}/p_etl", json={"slots": 5})
    assert partial.status_code == 422
    assert {tuple(e["loc"]) for e in partial.json()["detail"]} == {("pool",), ("include_deferred",)}
    r = v2.admin.patch(
        f"{P}/p_etl",
        params={"update_mask": ["slots"]},
        json={"pool": "p_etl", "slots": 5, "include_deferred": False, "description": "x"},
    )
    assert r.json()["slots"] == 5 and r.json()["description"] == "etl"
    other = v2.admin.patch(f"{P}/p_etl", json={"pool": "zz", "slots": 1, "include_deferred": False})
    assert other.json() == {"detail": "Invalid body, pool name from request body doesn't match uri parameter"}
    assert v2.viewer.get(f"{P}/nope").json() == {"detail": "The Pool with name: `nope` was not found"}
    assert v2.admin.post(P, json={"name": "p_inf", "slots": -1}).status_code == 400
    assert v2.admin.post(P, json={"name": "p_def", "slots": 1, "include_deferred": True}).status_code == 400
    assert v2.admin.post(P, json={"name": "p_bad", "slots": -2}).status_code == 422
    assert v2.viewer.post(P, json={"name": "p_v", "slots": 1}).status_code == 403
    names = v2.viewer.get(P, params={"pool_name_pattern": "P_E", "order_by": "-name"}).json()
    assert [p["name"] for p in names["pools"]] == ["p_etl"]
    assert v2.admin.delete(f"{P}/p_etl").status_code == 204
    gone = v2.admin.delete(f"{P}/p_etl")
    assert (gone.status_code, gone.json()) == (404, {"detail": "The Pool with name: `p_etl` was not found"})


def test_pool_bulk(v2: V2) -> None:
    assert v2.admin.post(P, json={"name": "pb_old", "slots": 1, "description": "old"}).status_code == 201
    r = v2.admin.patch(
        P,
        json={
            "actions": [
                {
                    "action": "create",
                    "entities": [{"name": "pb_new", "slots": 2}],
                    "action_on_existence": "fail",
                },
                {
                    "action": "create",
                    "entities": [{"name": "pb_old", "slots": 9}],
                    "action_on_existence": "overwrite",
                },
                {
                    "action": "update",
                    "entities": [{"name": "pb_new", "slots": 4, "include_deferred": False}],
                    "update_mask": ["slots"],
                },
                {"action": "delete", "entities": ["default_pool"]},
                {"action": "delete", "entities": ["pb_new", "pb_missing"]},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "create": {"success": ["pb_new", "pb_old"], "errors": []},
        "update": {"success": ["pb_new"], "errors": []},
        "delete": {
            "success": [],
            "errors": [
                {"error": "Default Pool can't be deleted", "status_code": 400},
                {
                    "error": "The pools with these pool names: {'pb_missing'} were not found.",
                    "status_code": 404,
                },
            ],
        },
    }
    old = v2.viewer.get(f"{P}/pb_old").json()
    assert (old["slots"], old["description"]) == (9, "old")  # overwrite sets only what was sent
    assert v2.viewer.get(f"{P}/pb_new").json()["slots"] == 4
    # As in Airflow, an update is checked whole (include_deferred is missing): a 422, nothing changed.
    r = v2.admin.patch(
        P,
        json={
            "actions": [
                {"action": "delete", "entities": ["pb_old"]},
                {"action": "update", "entities": [{"name": "pb_new", "slots": 7}]},
            ]
        },
    )
    assert r.status_code == 422 and v2.viewer.get(f"{P}/pb_old").status_code == 200
    r = v2.admin.patch(P, json={"actions": [{"action": "delete", "entities": ["pb_new", "pb_old"]}]})
    assert r.json()["delete"] == {"success": ["pb_new", "pb_old"], "errors": []}
