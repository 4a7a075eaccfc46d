"""Users from the command line, the API server, and standalone's first admin."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import free_port
from tests.integration.conftest import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(env, *args, ok=True, stdin=None):
    p = subprocess.run(
        [sys.executable, "-m", "millstream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )
    if ok:
        assert p.returncode == 0, p.stderr + p.stdout
    return p


def get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_users_create_list_token_and_delete(tmp_path):
    env = {**os.environ, "MILLSTREAM_HOME": str(tmp_path)}
    assert (
        "Created admin ops"
        in run(env, "users", "create", "ops", "--role", "admin", "--password", "s3cret-pass").stdout
    )
    # the password is asked for (twice) when not given
    made = run(env, "users", "create", "eve", stdin="another-pass\nanother-pass\n")
    assert "Created viewer eve" in made.stdout
    listed = run(env, "users", "list").stdout
    assert re.search(r"ops\s+admin", listed) and re.search(r"eve\s+viewer", listed)
    assert (
        "already exists" in run(env, "users", "create", "ops", "--password", "s3cret-pass", ok=False).stderr
    )
    assert "at least 8" in run(env, "users", "create", "bob", "--password", "short", ok=False).stderr
    token = run(env, "users", "token", "ops", "--name", "ci").stdout.strip()
    assert token.startswith("ms_")
    assert "no user 'nobody'" in run(env, "users", "token", "nobody", ok=False).stderr
    listed = run(env, "users", "tokens", "ops").stdout
    token_id = re.search(r"(\d+)\s+ci", listed).group(1)
    assert f"Revoked token {token_id}" in run(env, "users", "revoke", "ops", token_id).stdout
    assert "ci" not in run(env, "users", "tokens", "ops").stdout
    assert "has no token" in run(env, "users", "revoke", "ops", token_id, ok=False).stderr
    run(env, "users", "delete", "eve")
    assert "eve" not in run(env, "users", "list").stdout


def test_api_server_serves_with_a_token(tmp_path):
    env = {**os.environ, "MILLSTREAM_HOME": str(tmp_path)}
    run(env, "users", "create", "ops", "--role", "admin", "--password", "s3cret-pass")
    token = run(env, "users", "token", "ops").stdout.strip()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "millstream.cli", "api-server", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:

        def up():
            try:
                return get(f"{base}/health")[0] == 200
            except OSError:
                return False

        wait_for(up, 30, "the API server")
        assert get(f"{base}/dags")[0] == 401
        status, body = get(f"{base}/me", token)
        assert status == 200 and body["username"] == "ops"
        status, spec = get(f"{base}/openapi.json", token)
        assert status == 200 and "/api/v1/dags/{dag_id}/runs" in spec["paths"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_standalone_prints_the_first_admin_password_once(tmp_path):
    env = {
        **os.environ,
        "MILLSTREAM_HOME": str(tmp_path / "home"),
        "MILLSTREAM_DAGS_FOLDER": str(EXAMPLES / "process_daily_files.py"),
    }
    first = run(env, "standalone", "--trigger", "process_daily_files", "--exit-after-run").stdout
    m = re.search(r"login\s+admin / (\S+)\s+\(shown once", first)
    assert m, first
    port = env.get("MILLSTREAM__API__PORT")
    assert f"web UI    http://127.0.0.1:{port}/" in first
    again = run(env, "standalone", "--trigger", "process_daily_files", "--exit-after-run").stdout
    assert "login" not in again and "web UI" in again
    # the printed password works
    token = run(env, "users", "token", "admin").stdout.strip()
    assert token.startswith("ms_")
    from millstream.store import Store
    from millstream.store import users as users_q

    store = Store(f"sqlite:///{tmp_path / 'home' / 'millstream.db'}")
    with store.read() as conn:
        assert users_q.authenticate(conn, "admin", m.group(1)) is not None
    store.dispose()


def test_standalone_says_clearly_when_the_port_is_taken(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            **os.environ,
            "MILLSTREAM_HOME": str(tmp_path / "home"),
            "MILLSTREAM_DAGS_FOLDER": str(EXAMPLES / "process_daily_files.py"),
        }
        p = run(env, "standalone", "--port", str(port), ok=False)
    assert p.returncode == 1
    assert f"cannot serve the API on 127.0.0.1:{port}" in p.stderr and "--port" in p.stderr
