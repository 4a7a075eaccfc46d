"""Variables and Connections over the REST API: CRUD, who may change them, what is masked
(sensitive variables, every password, secret extra values), bad input naming the field,
an import that sets all or nothing, and values encrypted in the store's rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from millstream.errors import ConflictError
from millstream.store import secret_values as secrets_q
from millstream.store.tables import connection, variable
from tests.api.conftest import Api
from tests.api.test_api import error, ok

V = "/api/v1/variables"
C = "/api/v1/connections"
PASSWORD = "pw-Very-Secret-42"


@pytest.fixture(scope="module", autouse=True)
def _fernet_key() -> Iterator[None]:
    """This module's own key, so nothing is written to the default home's fernet.key."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MILLSTREAM__CORE__FERNET_KEY", Fernet.generate_key().decode())
        yield


def raw(api: Api, table: sa.Table, **where: str) -> dict:
    col, value = next(iter(where.items()))
    with api.harness.store.read() as conn:
        return dict(conn.execute(sa.select(table).where(table.c[col] == value)).mappings().one())


# -- variables --------------------------------------------------------------------------------


def test_variables_crud_and_paging(api: Api):
    made = ok(api.admin.put(f"{V}/region", json={"value": "eu-west", "description": "where"}))
    assert made["key"] == "region" and made["value"] == "eu-west" and made["masked"] is False
    assert made["description"] == "where" and made["updated_at"]
    assert ok(api.viewer.get(f"{V}/region"))["value"] == "eu-west"
    # a new value; a description left out is kept
    again = ok(api.admin.put(f"{V}/region", json={"value": "eu-north"}))
    assert again["value"] == "eu-north" and again["description"] == "where"
    for i in range(3):
        ok(api.admin.put(f"{V}/page.{i}", json={"value": str(i)}))
    listed = ok(api.viewer.get(V, params={"key_pattern": "page.", "limit": 2, "offset": 1}))
    assert listed["total"] == 3 and [v["key"] for v in listed["items"]] == ["page.1", "page.2"]
    assert listed["limit"] == 2 and listed["offset"] == 1
    assert "region" in {v["key"] for v in ok(api.viewer.get(V))["items"]}
    assert api.admin.delete(f"{V}/region").status_code == 204
    error(api.admin.get(f"{V}/region"), 404, "region")
    error(api.admin.delete(f"{V}/region"), 404, "region")


def test_the_api_process_reads_variables_from_its_own_store(api: Api):
    from millstream.sdk.variable import Variable
    from millstream.store.secret_values import bind_store

    bind_store(api.harness.store)  # what create_app does (the app here is shared by the module)
    ok(api.admin.put(f"{V}/seen_by_get", json={"value": "yes"}))
    assert Variable.get("seen_by_get") == "yes"


def test_a_sensitive_variable_is_masked_everywhere(api: Api):
    made = ok(api.admin.put(f"{V}/warehouse_password", json={"value": PASSWORD, "description": "db"}))
    assert made["value"] == "***" and made["masked"] is True
    assert ok(api.viewer.get(f"{V}/warehouse_password"))["value"] == "***"
    listed = api.viewer.get(V)
    assert PASSWORD not in listed.text
    assert {v["key"]: v["value"] for v in listed.json()["items"]}["warehouse_password"] == "***"
    # the masked value sent back (say, to change the description) keeps the secret
    ok(api.admin.put(f"{V}/warehouse_password", json={"value": "***", "description": "new"}))
    with api.harness.store.read() as conn:
        assert secrets_q.get_variable(conn, "warehouse_password") == PASSWORD
    # a key that is not sensitive stores "***" as it is
    assert ok(api.admin.put(f"{V}/stars", json={"value": "***"}))["value"] == "***"


def test_a_variable_is_encrypted_in_its_row(api: Api):
    ok(api.admin.put(f"{V}/plain_looking", json={"value": "clear-text-value"}))
    row = raw(api, variable, key="plain_looking")
    assert row["is_encrypted"] is True
    assert "clear-text-value" not in row["val"]
    with api.harness.store.read() as conn:
        assert secrets_q.get_variable(conn, "plain_looking") == "clear-text-value"


def test_import_sets_many_and_counts(api: Api):
    body = {
        "imp_text": "a",
        "imp_json": {"rows": 10},
        "imp_described": {"value": "b", "description": "with a description"},
        "imp_number": 3,
    }
    assert ok(api.admin.post(f"{V}/import", json=body)) == {"imported": 4, "skipped": 0}
    assert ok(api.admin.get(f"{V}/imp_json"))["value"] == '{"rows": 10}'
    assert ok(api.admin.get(f"{V}/imp_number"))["value"] == "3"
    described = ok(api.admin.get(f"{V}/imp_described"))
    assert described["value"] == "b" and described["description"] == "with a description"
    again = ok(
        api.admin.post(f"{V}/import", params={"overwrite": "false"}, json={"imp_text": "z", "imp_new": "n"})
    )
    assert again == {"imported": 1, "skipped": 1}
    assert ok(api.admin.get(f"{V}/imp_text"))["value"] == "a"


def test_an_import_with_a_bad_entry_sets_nothing(api: Api):
    error(api.admin.post(f"{V}/import", json={"atomic_ok": "1", "bad key!": "2"}), 422, "body.bad key!")
    error(api.admin.get(f"{V}/atomic_ok"), 404)
    raw_body = b'{"atomic_ok": "1", "atomic_nan": NaN}'
    r = api.admin.post(f"{V}/import", content=raw_body, headers={"content-type": "application/json"})
    error(r, 422, "body.atomic_nan")
    error(api.admin.get(f"{V}/atomic_ok"), 404)
    error(api.admin.post(f"{V}/import", json=["not", "an", "object"]), 422, "body")


def test_an_import_that_fails_while_writing_rolls_back(api: Api, monkeypatch):
    real = secrets_q.set_variable

    def fail_on_second(conn, key, value, description=None):
        if key == "rollback_b":
            raise ConflictError("the store refused rollback_b")
        real(conn, key, value, description)

    monkeypatch.setattr(secrets_q, "set_variable", fail_on_second)
    error(api.admin.post(f"{V}/import", json={"rollback_a": "1", "rollback_b": "2"}), 409, "rollback_b")
    monkeypatch.undo()
    error(api.admin.get(f"{V}/rollback_a"), 404)


def test_bad_variable_requests_are_422_naming_the_field(api: Api):
    error(api.admin.put(f"{V}/x", json={}), 422, "body.value")
    error(api.admin.put(f"{V}/x", json={"value": 1}), 422, "body.value")
    error(api.admin.put(f"{V}/x", json={"value": "v", "colour": "red"}), 422, "body.colour")
    error(api.admin.put(f"{V}/bad%20key", json={"value": "v"}), 422, "path.key")
    error(api.admin.get(f"{V}/{'k' * 251}"), 422, "path.key")
    for raw_body in (b'{"value": "\\ud800"}', b'{"value": "a\\u0000b"}'):
        r = api.admin.put(f"{V}/x", content=raw_body, headers={"content-type": "application/json"})
        error(r, 422, "body.value")
    error(api.admin.put(f"{V}/x", json={"value": "v", "description": "a\x00"}), 422, "body.description")
    error(api.admin.get(V, params={"limit": 0}), 422, "query.limit")


# -- connections ------------------------------------------------------------------------------

PG = {
    "conn_type": "postgres",
    "host": "db.example.com",
    "schema": "analytics",
    "login": "etl",
    "password": PASSWORD,
    "port": 5432,
    "extra": {"sslmode": "require", "api_key": "extra-Secret-99", "nested": {"token": "tok-Secret-7"}},
    "description": "the warehouse",
}


def test_connections_crud_and_the_password_is_never_returned(api: Api):
    made = ok(api.admin.put(f"{C}/warehouse", json=PG))
    assert made["conn_id"] == "warehouse" and made["conn_type"] == "postgres"
    assert (made["host"], made["schema"], made["login"], made["port"]) == (
        "db.example.com",
        "analytics",
        "etl",
        5432,
    )
    assert made["password"] == "***"
    assert made["extra"] == {"sslmode": "require", "api_key": "***", "nested": {"token": "***"}}
    for r in (
        api.viewer.get(f"{C}/warehouse"),
        api.viewer.get(C),
        api.admin.get(C),
        api.admin.get(f"{C}/warehouse"),
    ):
        assert r.status_code == 200
        for secret in (PASSWORD, "extra-Secret-99", "tok-Secret-7"):
            assert secret not in r.text
    listed = ok(api.viewer.get(C, params={"conn_id_pattern": "wareh"}))
    assert [c["conn_id"] for c in listed["items"]] == ["warehouse"] and listed["total"] == 1
    assert api.admin.delete(f"{C}/warehouse").status_code == 204
    error(api.admin.get(f"{C}/warehouse"), 404, "warehouse")
    error(api.admin.delete(f"{C}/warehouse"), 404, "warehouse")


def stored(api: Api, conn_id: str):
    with api.harness.store.read() as conn:
        return secrets_q.get_connection(conn, conn_id)


def test_a_put_without_the_password_or_with_stars_keeps_it(api: Api):
    ok(api.admin.put(f"{C}/keeper", json=PG))
    # omitted: kept; the other fields are replaced
    changed = ok(api.admin.put(f"{C}/keeper", json={"conn_type": "postgres", "host": "other.example.com"}))
    assert changed["password"] == "***" and changed["login"] is None and changed["extra"] is None
    assert stored(api, "keeper").password == PASSWORD
    # what a GET shows, sent back with a change: the password and masked extra values are kept
    ok(api.admin.put(f"{C}/keeper", json=PG))
    back = ok(api.admin.get(f"{C}/keeper"))
    back.pop("conn_id")
    assert back["password"] == "***" and back["extra"]["api_key"] == "***"
    back["extra"]["sslmode"] = "disable"
    ok(api.admin.put(f"{C}/keeper", json=back))
    c = stored(api, "keeper")
    assert c.password == PASSWORD
    assert c.extra_dejson == {
        "sslmode": "disable",
        "api_key": "extra-Secret-99",
        "nested": {"token": "tok-Secret-7"},
    }
    # a new one replaces it, null removes it
    ok(api.admin.put(f"{C}/keeper", json={"conn_type": "postgres", "password": "new-password"}))
    assert stored(api, "keeper").password == "new-password"
    assert (
        ok(api.admin.put(f"{C}/keeper", json={"conn_type": "postgres", "password": None}))["password"] is None
    )
    assert stored(api, "keeper").password is None
    # "***" for a connection that has none stores none
    assert (
        ok(api.admin.put(f"{C}/starless", json={"conn_type": "http", "password": "***"}))["password"] is None
    )


def test_a_connections_secrets_are_encrypted_in_its_row(api: Api):
    ok(api.admin.put(f"{C}/encrypted", json=PG))
    row = raw(api, connection, conn_id="encrypted")
    assert row["is_encrypted"] is True and row["is_extra_encrypted"] is True
    assert PASSWORD not in row["password"]
    assert "extra-Secret-99" not in row["extra"] and "sslmode" not in row["extra"]
    assert stored(api, "encrypted").password == PASSWORD


def test_testing_a_connection(api: Api, tmp_path):
    ok(api.admin.put(f"{C}/local_db", json={"conn_type": "sqlite", "host": str(tmp_path / "t.db")}))
    assert ok(api.admin.post(f"{C}/local_db/test")) == {
        "status": True,
        "message": "Connection successfully tested",
    }
    ok(api.admin.put(f"{C}/nowhere", json={"conn_type": "nosuch", "password": PASSWORD}))
    failed = ok(api.admin.post(f"{C}/nowhere/test"))
    assert failed["status"] is False and "no hook for conn_type 'nosuch'" in failed["message"]
    ok(api.admin.put(f"{C}/refused", json={**PG, "host": "127.0.0.1", "port": 1}))
    refused = api.admin.post(f"{C}/refused/test")
    assert refused.json()["status"] is False and PASSWORD not in refused.text
    error(api.admin.post(f"{C}/no_such_conn/test"), 404, "no_such_conn")


def test_bad_connection_requests_are_422_naming_the_field(api: Api):
    url = f"{C}/bad"
    error(api.admin.put(url, json={"host": "h"}), 422, "body.conn_type")
    error(api.admin.put(url, json={"conn_type": ""}), 422, "body.conn_type")
    error(api.admin.put(url, json={"conn_type": "http", "port": "eighty"}), 422, "body.port")
    error(api.admin.put(url, json={"conn_type": "http", "port": 70000}), 422, "body.port")
    error(api.admin.put(url, json={"conn_type": "http", "extra": "text"}), 422, "body.extra")
    error(api.admin.put(url, json={"conn_type": "http", "uri": "http://x"}), 422, "body.uri")
    error(api.admin.put(url, json={"conn_type": "http", "schema_": "s"}), 422, "body.schema_")
    r = api.admin.put(
        url,
        content=b'{"conn_type": "http", "login": "\\udfff"}',
        headers={"content-type": "application/json"},
    )
    error(r, 422, "body.login")
    error(api.admin.put(f"{C}/a!b", json={"conn_type": "http"}), 422, "path.conn_id")
    error(api.admin.get(url), 404)


# -- who may ----------------------------------------------------------------------------------

CHANGES = [
    ("PUT", f"{V}/role_test", {"value": "v"}),
    ("DELETE", f"{V}/role_test", None),
    ("POST", f"{V}/import", {"role_test": "v"}),
    ("PUT", f"{C}/role_test", {"conn_type": "http"}),
    ("DELETE", f"{C}/role_test", None),
    ("POST", f"{C}/role_test/test", None),
]


@pytest.mark.parametrize(("method", "url", "body"), CHANGES)
def test_a_viewer_changes_no_secret(api: Api, method, url, body):
    error(api.viewer.request(method, url, json=body), 403, "viewer", "admin role")
    error(api.anon.request(method, url, json=body), 401, "no credentials")


def test_reading_needs_a_login(api: Api):
    for url in (V, f"{V}/x", C, f"{C}/x"):
        error(api.anon.get(url), 401, "no credentials")
