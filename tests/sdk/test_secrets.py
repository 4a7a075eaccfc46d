"""Variables and Connections: Airflow's text forms, the chain of backends, encryption at
rest, masking, templates, and the parse-time cache."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from millstream import DAG, BashOperator, Connection, Variable, task
from millstream.core.states import TaskState
from millstream.sdk import masking, secrets
from millstream.sdk.connection import ConnectionNotFoundError, InvalidConnectionError
from millstream.sdk.variable import VariableNotFoundError
from millstream.settings import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data" / "secrets"
AIRFLOW = json.loads((DATA / "connections_airflow_3_3_2.json").read_text())
FIELDS = ("conn_type", "host", "login", "password", "schema", "port", "extra")
DAY = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh(home, monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith(("MILLSTREAM_VAR_", "MILLSTREAM_CONN_", "AIRFLOW_VAR_", "AIRFLOW_CONN_")):
            monkeypatch.delenv(name)
    secrets.reset()
    masking.forget_secrets()
    yield
    secrets.reset()
    masking.forget_secrets()


@pytest.mark.parametrize("case", AIRFLOW["uri"], ids=lambda c: c["uri"][:40])
def test_a_uri_parses_and_prints_as_airflow_3_3_2_does(case):
    c = Connection.from_uri(case["uri"], "x")
    assert {f: getattr(c, f) for f in FIELDS} == case["fields"]
    assert c.get_uri() == case["get_uri"]
    again = Connection.from_uri(c.get_uri(), "x")
    assert again.extra_dejson == c.extra_dejson and again.password == c.password


@pytest.mark.parametrize("case", AIRFLOW["json"], ids=lambda c: c["json"]["conn_type"])
def test_the_json_form_as_airflow_3_3_2(case):
    c = Connection.from_json(json.dumps(case["json"]), "x")
    assert {f: getattr(c, f) for f in FIELDS} == case["fields"]
    assert json.loads(c.as_json()) == case["as_json"]
    assert c.get_uri() == case["get_uri"]


def test_bad_connection_texts_are_clear_errors():
    with pytest.raises(InvalidConnectionError, match="not a connection URI"):
        Connection.from_uri("just-a-host", "c1")
    with pytest.raises(InvalidConnectionError, match="bad port"):
        Connection.from_uri("postgres://u:p@h:notaport/db", "c1")
    with pytest.raises(InvalidConnectionError, match="unknown field"):
        Connection.from_json('{"conn_type": "http", "hostname": "x"}', "c1")
    with pytest.raises(InvalidConnectionError, match="either uri= or the separate fields"):
        Connection(conn_id="c", uri="http://h", host="h")


def test_environment_overrides_with_both_prefixes(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_REGION", "eu")
    monkeypatch.setenv("AIRFLOW_CONN_MY_API", "https://tok:secret12@api.example.com")
    monkeypatch.setenv("MILLSTREAM_CONN_WAREHOUSE", '{"conn_type": "postgres", "host": "db", "port": 5432}')
    assert Variable.get("region") == "eu"
    assert Connection.get("my_api").password == "secret12"
    assert Connection.get("warehouse").port == 5432
    monkeypatch.setenv("MILLSTREAM_VAR_REGION", "us")  # Millstream's own name wins
    assert Variable.get("region") == "us"


def test_missing_keys_name_the_key_and_what_to_do():
    with pytest.raises(VariableNotFoundError, match="variables set nope"):
        Variable.get("nope")
    assert Variable.get("nope", default="d") == "d"
    with pytest.raises(KeyError):  # Airflow code catches KeyError
        Variable.get("nope")
    with pytest.raises(ConnectionNotFoundError, match="The conn_id `ghost` isn't defined"):
        Connection.get("ghost")


def test_variables_in_the_store_are_encrypted_and_rotate(home, monkeypatch):
    Variable.set("plain", "visible-value", description="d")
    Variable.set("cfg", {"a": [1, 2]}, serialize_json=True)
    assert Variable.get("plain") == "visible-value"
    assert Variable.get("cfg", deserialize_json=True) == {"a": [1, 2]}
    db = sqlite3.connect(home / "millstream.db")
    raw = dict(db.execute("select key, val from variable").fetchall())
    assert "visible-value" not in raw["plain"] and raw["plain"].startswith("gAAAA")
    old_key = (home / "fernet.key").read_text().strip()

    from millstream.store import Store, crypto
    from millstream.store import secret_values as sv

    new_key = crypto.generate()
    monkeypatch.setenv("MILLSTREAM__CORE__FERNET_KEY", f"{new_key},{old_key}")
    assert Variable.get("plain") == "visible-value"  # the old key still decrypts
    store = Store(f"sqlite:///{home / 'millstream.db'}")
    with store.begin() as conn:
        assert sv.rotate(conn) == (2, 0)
    monkeypatch.setenv("MILLSTREAM__CORE__FERNET_KEY", new_key)  # the old key dropped
    secrets.reset()
    assert Variable.get("plain") == "visible-value"
    monkeypatch.setenv("MILLSTREAM__CORE__FERNET_KEY", old_key)  # a process with the wrong key
    with pytest.raises(ConfigError, match="cannot be decrypted with the Fernet key"):
        Variable.get("plain")
    store.dispose()
    assert Variable.delete("plain") == 1  # delete needs no decryption
    assert Variable.delete("plain") == 0


def test_a_local_file_backend_sits_between_environment_and_store(home, monkeypatch, tmp_path):
    (tmp_path / "vars.yaml").write_text("threshold: 7\nnested: {a: 1}\n")
    (tmp_path / "conns.env").write_text(
        '# comment\nfiles=fs://?path=%2Fdata\napi={"conn_type": "http", "host": "h"}\n'
    )
    monkeypatch.setenv(
        "MILLSTREAM__SECRETS__BACKEND", "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    )
    monkeypatch.setenv(
        "MILLSTREAM__SECRETS__BACKEND_KWARGS",
        json.dumps(
            {
                "variables_file_path": str(tmp_path / "vars.yaml"),
                "connections_file_path": str(tmp_path / "conns.env"),
            }
        ),
    )
    secrets.reset()
    Variable.set("threshold", "1")  # in the store, behind the file
    assert Variable.get("threshold") == "7"
    assert Variable.get("nested", deserialize_json=True) == {"a": 1}
    assert Connection.get("files").extra_dejson == {"path": "/data"}
    assert Connection.get("api").host == "h"
    monkeypatch.setenv("MILLSTREAM_VAR_THRESHOLD", "9")
    assert Variable.get("threshold") == "9"
    (tmp_path / "bad.env").write_text("no equals sign\n")
    monkeypatch.setenv(
        "MILLSTREAM__SECRETS__BACKEND_KWARGS", json.dumps({"variables_file_path": str(tmp_path / "bad.env")})
    )
    secrets.reset()
    with pytest.raises(ConfigError, match=r"bad.env:1: expected KEY=value"):
        Variable.get("threshold_x")
    monkeypatch.setenv("MILLSTREAM__SECRETS__BACKEND", "vault")
    secrets.reset()
    with pytest.raises(ConfigError, match="no HashiCorp Vault backend"):
        Variable.get("x")


def test_templates_read_variables_and_connections_and_mask_secrets(monkeypatch):
    monkeypatch.setenv("MILLSTREAM_VAR_BUCKET", "raw-bucket")
    monkeypatch.setenv("MILLSTREAM_VAR_SETTINGS", '{"depth": 3}')
    monkeypatch.setenv("MILLSTREAM_CONN_WAREHOUSE", "postgres://etl:hunter2-secret@db.internal:5432/dw")
    with DAG("tpl_secrets", schedule=None, start_date=DAY) as dag:
        BashOperator(
            task_id="show",
            bash_command=(
                "echo host={{ conn.warehouse.host }} bucket={{ var.value.bucket }} "
                "depth={{ var.json.settings.depth }} default={{ var.value.get('missing', 'fallback') }} "
                "pw={{ conn.warehouse.password }}"
            ),
        )

        @task
        def prints():
            from millstream import BaseHook

            c = BaseHook.get_connection("warehouse")
            print("the password is", c.password)
            return c.login

        prints()
    run = dag.test(logical_date=DAY)
    show, py = run.ti("show"), run.ti("prints")
    assert show.state == py.state == TaskState.SUCCESS
    # A default is masked too, as Airflow masks it (it may be a fallback credential).
    assert "host=db.internal bucket=*** depth=3 default=*** pw=***" in show.log
    assert "hunter2-secret" not in show.log and "hunter2-secret" not in json.dumps(show.rendered)
    assert "the password is ***" in py.log and "hunter2-secret" not in py.log


def _dag_file(folder: Path) -> Path:
    path = folder / "reads_var.py"
    path.write_text(
        textwrap.dedent(
            """
            from datetime import datetime, timezone
            from millstream import DAG, EmptyOperator, Variable

            with DAG(Variable.get("dag_name", default="unset"), schedule=None,
                     start_date=datetime(2024, 1, 1, tzinfo=timezone.utc)):
                EmptyOperator(task_id="t")
            """
        )
    )
    return path


@pytest.mark.parametrize("use_cache", [True, False])
def test_top_level_reads_at_parse_time_are_cached_for_the_ttl(home, tmp_path, monkeypatch, use_cache):
    from millstream.scheduler import parsing

    monkeypatch.setattr(parsing, "_secrets_cache", {})
    monkeypatch.setenv("MILLSTREAM__SECRETS__USE_CACHE", str(use_cache).lower())
    path = _dag_file(tmp_path)
    Variable.set("dag_name", "first")
    (parsed,) = parsing.parse_files([str(path)], 30)
    assert [s.dag_id for s in parsed.specs] == ["first"]
    Variable.set("dag_name", "second")
    (parsed,) = parsing.parse_files([str(path)], 30)
    # With the cache, the second parse did not ask the store (it still sees the old value).
    assert [s.dag_id for s in parsed.specs] == ["first" if use_cache else "second"]
