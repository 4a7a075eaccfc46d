"""``airflowctl`` (apache-airflow-ctl, Airflow's remote CLI) against a real Millstream server,
as subprocesses: log in with a username and password, then ``dags list``, ``dagrun list``
and ``get``, ``variables list/get/create/import``.

Headless: airflowctl keeps its token in the OS keyring unless ``AIRFLOW_CLI_DEBUG_MODE=true``,
its supported file mode (``$AIRFLOW_HOME/debug_creds_<env>.json``); ``AIRFLOW_HOME`` is a
temporary folder, so nothing outside the test is touched and no keyring backend is needed.

:func:`ctl_scenario` ran against Airflow 3.3.2 itself on 2026-12-07 (passed), on the
``airflow standalone`` described in ``test_airflow_client.py``'s docstring, after that
scenario (which left the finished run ``client_conf/client_run_1``)::

    .venv/bin/python tests/integration/test_airflowctl.py http://127.0.0.1:28793 tester tester-pass \\
        client_conf client_run_1

Found there: ``dagrun list`` without ``--limit`` fails on Airflow too (airflowctl 0.1.5 sends
``limit=`` empty: Airflow answers 422), so the scenario passes ``--limit``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__:
    from .test_airflow_client import Server, until
else:  # run as a script against another server
    sys.path.insert(0, str(Path(__file__).parent))
    from test_airflow_client import Server, until  # type: ignore[no-redef]

CTL = Path(sys.executable).with_name("airflowctl")


def ctl(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CLI_DEBUG_MODE": "true",
        "AIRFLOW_CLI_API_RETRIES": "1",
    }
    env.pop("AIRFLOW_CLI_TOKEN", None)
    r = subprocess.run(
        [str(CTL), *args], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    if ok:
        assert r.returncode == 0, (args, r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return r


def ctl_json(home: Path, *args: str) -> Any:
    out = ctl(home, *args, "-o", "json").stdout
    return json.JSONDecoder().raw_decode(out, out.index("["))[0]  # after any warning lines


def ctl_scenario(url: str, username: str, password: str, home: Path, dag_id: str, run_id: str) -> None:
    """``run_id`` of ``dag_id`` exists and has finished; ``home`` is an empty folder."""
    r = ctl(home, "auth", "login", "--api-url", url, "--username", username, "--password", password)
    assert "Login successful" in r.stdout, r.stdout
    assert json.loads((home / "production.json").read_text()) == {"api_url": url}
    assert json.loads((home / "debug_creds_production.json").read_text())["api_token_production"]

    dags = ctl_json(home, "dags", "list")
    assert dag_id in [d["dag_id"] for d in dags], dags

    pages = ctl_json(home, "dagrun", "list", "--dag-id", dag_id, "--limit", "10")
    runs = [r for page in pages for r in page["dag_runs"]]
    assert run_id in [r["dag_run_id"] for r in runs], runs
    finished = ctl_json(home, "dagrun", "list", "--dag-id", dag_id, "--limit", "10", "--state", "success")
    assert run_id in [r["dag_run_id"] for page in finished for r in page["dag_runs"]], finished
    (run,) = ctl_json(home, "dagrun", "get", dag_id, run_id)
    assert (run["dag_id"], run["dag_run_id"], run["state"]) == (dag_id, run_id, "success"), run

    ctl(home, "variables", "create", "--key", "ctl_var", "--value", "hello", "--description", "from ctl")
    (var,) = ctl_json(home, "variables", "get", "ctl_var")
    assert (var["key"], var["value"], var["description"]) == ("ctl_var", "hello", "from ctl"), var
    dup = ctl(home, "variables", "create", "--key", "ctl_var", "--value", "again", ok=False)
    assert dup.returncode == 1 and "already exists" in dup.stdout + dup.stderr, dup
    missing = ctl(home, "variables", "get", "ctl_missing", ok=False)
    assert missing.returncode == 1 and "was not found" in missing.stdout + missing.stderr, missing

    file = home / "vars.json"
    file.write_text(json.dumps({"imp_a": "1", "imp_b": {"value": "two", "description": "d"}}))
    r = ctl(home, "variables", "import", str(file))
    assert "Import successful" in r.stdout and "imp_a" in r.stdout and "imp_b" in r.stdout, r.stdout
    file.write_text(json.dumps({"imp_a": "one"}))
    ctl(home, "variables", "import", "-a", "overwrite", str(file))
    (var,) = ctl_json(home, "variables", "get", "imp_a")
    assert var["value"] == "one", var
    listed = {v["key"]: v for v in ctl_json(home, "variables", "list")}
    assert {"ctl_var", "imp_a", "imp_b"} <= set(listed), listed
    assert listed["imp_b"]["description"] == "d"


def test_airflowctl_against_millstream(tmp_path: Path) -> None:
    from millstream.store import Store
    from millstream.store import runs as runs_q

    server = Server(tmp_path / "server")
    try:
        server.start()
        server.cli("dags", "unpause", "client_conf")
        server.cli(
            "dags",
            "trigger",
            "client_conf",
            "--airflow-imports",
            "--run-id",
            "ctl_run_1",
            "--conf",
            '{"greeting": "hi"}',
        )
        store = Store(f"sqlite:///{server.home / 'millstream.db'}")

        def finished() -> str | None:
            with store.read() as conn:
                state = str(runs_q.get_run(conn, "client_conf", "ctl_run_1")["state"])
            return state if state in ("success", "failed") else None

        assert until("the run to finish", finished) == "success"
        store.dispose()
        home = tmp_path / "ctl"
        home.mkdir()
        ctl_scenario(server.host, "tester", "tester-pass", home, "client_conf", "ctl_run_1")
    except BaseException:
        print(server.log.read_text()[-6000:])
        raise
    finally:
        server.stop()


if __name__ == "__main__":
    url, user, password, dag, run = sys.argv[1:6]
    with tempfile.TemporaryDirectory() as d:
        ctl_scenario(url, user, password, Path(d), dag, run)
    print("ctl scenario passed")
