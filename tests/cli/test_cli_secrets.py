"""`millstream variables`, `connections` and `rotate-fernet-key` as a user runs them:
Airflow's commands and arguments, secrets never printed, imports all or nothing."""

from __future__ import annotations

import json
import sqlite3

import pytest

from .conftest import make_cli


@pytest.fixture
def cli(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    return make_cli(tmp_path / "home", dags)


def test_variables_set_get_list_delete_and_json(cli):
    cli("variables", "set", "bucket", "raw-data", "--description", "landing zone")
    cli("variables", "set", "db_password", "s3cr3t-value")
    cli("variables", "set", "limits", '{"rows": 10}', "-j")
    assert cli("variables", "get", "bucket").stdout.strip() == "raw-data"
    assert json.loads(cli("variables", "get", "limits", "-j").stdout) == {"rows": 10}
    listed = json.loads(cli("variables", "list", "-o", "json").stdout)
    assert {v["key"]: v["value"] for v in listed}["db_password"] == "***"
    assert "s3cr3t-value" not in cli("variables", "list").stdout
    assert cli("variables", "get", "nope", "--default", "dflt").stdout.strip() == "dflt"
    p = cli("variables", "get", "nope", ok=False)
    assert p.returncode == 1 and "Variable nope does not exist" in p.stderr and "Traceback" not in p.stderr
    cli("variables", "delete", "bucket")
    assert "no variable 'bucket'" in cli("variables", "delete", "bucket", ok=False).stderr
    bad = cli("variables", "set", "x", "{nope", "-j", ok=False)
    assert "--json was given but VALUE is not JSON" in bad.stderr


def test_the_key_file_is_made_once_and_values_are_encrypted(cli):
    cli("variables", "set", "token", "plain-text-token")
    key_file = cli.home / "fernet.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text()
    cli("variables", "set", "other", "x")
    assert key_file.read_text() == key
    row = (
        sqlite3.connect(cli.home / "millstream.db")
        .execute("select val from variable where key='token'")
        .fetchone()
    )
    assert "plain-text-token" not in row[0]


def test_variables_import_is_all_or_nothing_and_export_round_trips(cli, tmp_path):
    good = tmp_path / "vars.json"
    good.write_text(json.dumps({"a": "1", "b": {"nested": True}, "c": [1, 2]}))
    assert "Imported 3 variable(s)" in cli("variables", "import", str(good)).stdout
    assert json.loads(cli("variables", "get", "b").stdout) == {"nested": True}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"fresh": "ok", "bad key!": "no"}))
    p = cli("variables", "import", str(bad), ok=False)
    assert "'bad key!'" in p.stderr
    assert cli("variables", "get", "fresh", ok=False).returncode == 1  # nothing was imported
    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"a": "2", "new": "n"}))
    p = cli("variables", "import", str(clash), "--action-on-existing-key", "fail", ok=False)
    assert "already set: a" in p.stderr
    assert (
        "skipped 1 existing"
        in cli("variables", "import", str(clash), "--action-on-existing-key", "skip").stdout
    )
    assert cli("variables", "get", "a").stdout.strip() == "1"
    out = tmp_path / "export.json"
    cli("variables", "export", str(out))
    # As Airflow exports them: values that are JSON come out parsed ("1" as 1).
    assert json.loads(out.read_text()) == {"a": 1, "b": {"nested": True}, "c": [1, 2], "new": "n"}
    assert "no such file" in cli("variables", "import", str(tmp_path / "nothing.json"), ok=False).stderr


def test_connections_add_get_list_export_import_delete(cli, tmp_path):
    cli(
        "connections",
        "add",
        "warehouse",
        "--conn-uri",
        "postgres://etl:pa%24%24word@db.internal:5432/dw?sslmode=require",
    )
    cli(
        "connections", "add", "api", "--conn-type", "http", "--conn-host", "api.example.com",
        "--conn-password", "api-token-123", "--conn-extra", '{"headers": {"X-Team": "data"}, "api_key": "k-12345"}',
    )  # fmt: skip
    got = json.loads(cli("connections", "get", "warehouse", "-o", "json").stdout)
    assert (got["host"], got["port"], got["schema"], got["password"]) == ("db.internal", 5432, "dw", "***")
    assert got["extra"] == {"sslmode": "require"}
    api = json.loads(cli("connections", "get", "api", "-o", "json").stdout)
    assert api["extra"] == {"headers": {"X-Team": "data"}, "api_key": "***"}
    text = cli("connections", "list").stdout + cli("connections", "list", "-o", "json").stdout
    assert "pa$$word" not in text and "api-token-123" not in text and "warehouse" in text
    dup = cli("connections", "add", "warehouse", "--conn-uri", "postgres://h/db", ok=False)
    assert "already exists" in dup.stderr
    both = cli("connections", "add", "x", "--conn-uri", "http://h", "--conn-host", "h", ok=False)
    assert "give one of --conn-uri, --conn-json" in both.stderr
    env_file = tmp_path / "conns.env"
    cli("connections", "export", str(env_file))
    assert "warehouse=postgres://etl:pa%24%24word@db.internal:5432/dw?sslmode=require" in env_file.read_text()
    yaml_file = tmp_path / "conns.yaml"
    cli("connections", "export", str(yaml_file))
    cli("connections", "delete", "warehouse")
    cli("connections", "delete", "api")
    assert "no connection 'api'" in cli("connections", "delete", "api", ok=False).stderr
    assert "Imported 2 connection(s)" in cli("connections", "import", str(yaml_file)).stdout
    again = json.loads(cli("connections", "get", "api", "-o", "json").stdout)
    assert again["extra"]["headers"] == {"X-Team": "data"}


def test_environment_connections_are_seen_by_get_but_not_stored(cli, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FROM_ENV", "mysql://root@127.0.0.1:3306/test")
    got = json.loads(cli("connections", "get", "from_env", "-o", "json").stdout)
    assert got["conn_type"] == "mysql" and got["host"] == "127.0.0.1"
    assert "from_env" not in cli("connections", "list").stdout


def test_rotate_fernet_key(cli, monkeypatch):
    cli("variables", "set", "k", "value-one")
    cli("connections", "add", "c", "--conn-uri", "http://u:pw-secret@h")
    old = (cli.home / "fernet.key").read_text().strip()
    new = cli("rotate-fernet-key", "--generate").stdout.strip()
    monkeypatch.setenv("MILLSTREAM__CORE__FERNET_KEY", f"{new},{old}")
    assert "Re-encrypted 1 variable(s) and 1 connection(s)" in cli("rotate-fernet-key").stdout
    monkeypatch.setenv("MILLSTREAM__CORE__FERNET_KEY", new)
    assert cli("variables", "get", "k").stdout.strip() == "value-one"
    monkeypatch.setenv("MILLSTREAM__CORE__FERNET_KEY", old)
    p = cli("variables", "get", "k", ok=False)
    assert "cannot be decrypted with the Fernet key from the core.fernet_key setting" in p.stderr
