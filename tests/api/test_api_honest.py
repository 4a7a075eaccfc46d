"""What the API says when a request is wrong, so that an HTTP client can act on it: which
of the ways in failed (no credentials, a scheme it does not take, a token it does not
know), which query parameter is wrong (422 naming it, for every enum and filter), and
errors worded for HTTP clients — routes and body fields, not CLI commands and flags.

The app is built over a SQLite store where a real scheduler (inline executor, driven turn
by turn) has finished one run; nothing here needs it to go on, so the module is quick."""

from __future__ import annotations

import ast
import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from millstream import control
from millstream.api import create_app
from millstream.core.states import RunState, TaskState
from millstream.executors.inline import InlineExecutor
from millstream.scheduler.loop import Scheduler
from millstream.scheduler.parsing import DagFolder
from millstream.sdk.loader import load_file
from millstream.settings import Settings
from millstream.store import Store
from millstream.store import runs as runs_q
from millstream.store import users as users_q
from millstream.worker.results import ResultReader

SRC = Path(__file__).resolve().parents[2] / "src" / "millstream"

DAGS = """
from datetime import datetime
from millstream import dag, task, Param

@dag(schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False, is_paused_upon_creation=True)
def daily():
    @task
    def only():
        return 1

    only()

@dag(schedule=None)
def manual():
    @task
    def first():
        return 1

    @task
    def second(x):
        return x

    second(first())

@dag(schedule=None, params={"day": Param(type="string")})
def needs_day():
    @task
    def show(params=None):
        return params["day"]

    show()

daily()
manual()
needs_day()
"""


class Api:
    def __init__(self, home: Path) -> None:
        dags = home / "dags"
        dags.mkdir()
        (dags / "honest.py").write_text(DAGS)
        self.store = Store(f"sqlite:///{home / 'ms.db'}")
        self.store.migrate()
        loaded = load_file(dags / "honest.py").dags
        scheduler = Scheduler(
            self.store,
            InlineExecutor(lambda fileloc, dag_id: loaded[dag_id], ResultReader(self.store)),
            logs_folder=str(home / "logs"),
            dag_folder=DagFolder(dags, 30),
            paused_on_creation=False,
        )
        scheduler.refresh_dags()
        control.trigger(self.store, "manual", run_id="one")
        scheduler.run_until(lambda: self.run_state("manual", "one") == "success", timeout=60)
        control.trigger(self.store, "manual", run_id="two")  # stays queued: no more turns
        with self.store.begin() as conn:
            users_q.create_user(conn, "root", "password-1", "admin")
            self.token = users_q.create_token(conn, "root", "tests")
        self.app = create_app(Settings.load(environ={"MILLSTREAM_HOME": str(home)}), self.store)
        self.anon = TestClient(self.app)
        self.admin = TestClient(self.app, headers={"Authorization": f"Bearer {self.token}"})

    def run_state(self, dag_id: str, run_id: str) -> str:
        with self.store.read() as conn:
            return str(runs_q.get_run(conn, dag_id, run_id)["state"])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    a = Api(tmp_path_factory.mktemp("honest"))
    try:
        yield a
    finally:
        a.store.dispose()


def refused(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    for w in words:
        assert w in body["detail"], body["detail"]
    return body


def speaks_http(detail: str) -> None:
    """No CLI command to run and no ``--flag`` to pass: an HTTP client has neither."""
    assert "millstream " not in detail, detail
    assert not re.search(r"(?<![\w-])--[a-z]", detail), detail


# -- the three ways a request fails to authenticate -----------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_is_told_it_is_not_taken_and_what_to_do(api: Api):
    right = api.anon.get("/api/v1/dags", headers=basic("root", "password-1"))
    body = refused(right, 401, "unsupported auth scheme 'Basic'", "POST /api/v1/auth/token", "Bearer <token>")
    assert right.headers["www-authenticate"] == 'Bearer realm="millstream"'
    speaks_http(body["detail"])
    # The password is not even checked: a wrong one gets the same answer, so Basic is no oracle.
    wrong = api.anon.get("/api/v1/dags", headers=basic("root", "nope"))
    assert wrong.json() == body
    other = refused(api.anon.get("/api/v1/dags", headers={"Authorization": "token abc"}), 401)
    assert "unsupported auth scheme 'token'" in other["detail"]


def test_a_token_the_server_does_not_know_is_invalid_or_expired(api: Api):
    r = api.anon.get("/api/v1/dags", headers={"Authorization": "Bearer ms_garbage"})
    body = refused(r, 401, "invalid or expired token", "POST /api/v1/auth/token")
    speaks_http(body["detail"])
    assert r.headers["www-authenticate"].startswith('Bearer realm="millstream", error="invalid_token"')
    # A token revoked by a new password is the same case.
    with api.store.begin() as conn:
        users_q.create_user(conn, "rotating", "password-r", "viewer")
        token = users_q.create_token(conn, "rotating", "t")
        users_q.set_password(conn, "rotating", "password-r2")
    refused(
        api.anon.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}), 401, "invalid or expired"
    )
    empty = api.anon.get("/api/v1/dags", headers={"Authorization": "Bearer "})
    refused(empty, 401, "no token after 'Bearer'")
    assert 'error="invalid_request"' in empty.headers["www-authenticate"]


def test_no_credentials_says_so(api: Api):
    r = api.anon.get("/api/v1/dags")
    body = refused(r, 401, "no credentials", "Authorization: Bearer <token>", "POST /api/v1/auth/token")
    speaks_http(body["detail"])
    assert r.headers["www-authenticate"] == 'Bearer realm="millstream"'  # RFC 6750 3.1: no error code
    assert body["type"] == "unauthenticated"


def test_the_three_refusals_read_differently(api: Api):
    texts = {
        api.anon.get("/api/v1/dags", headers=h).json()["detail"]
        for h in ({}, basic("root", "password-1"), {"Authorization": "Bearer ms_garbage"})
    }
    assert len(texts) == 3


def test_an_ended_session_says_log_in_again(api: Api):
    with api.store.begin() as conn:
        users_q.create_user(conn, "leaving", "password-l", "viewer")
    browser = TestClient(api.app)
    browser.post("/login", data={"username": "leaving", "password": "password-l"})
    assert browser.get("/api/v1/me").status_code == 200
    with api.store.begin() as conn:
        users_q.delete_user(conn, "leaving")
    refused(browser.get("/api/v1/me"), 401, "session has ended", "log in again")


# -- every enum and filter is checked -------------------------------------------------------------

RUNS = "/api/v1/dags/manual/runs"
TIS = "/api/v1/dags/manual/runs/one/tasks"

BOGUS = [
    (RUNS, "state"),
    (RUNS, "run_type"),
    (TIS, "state"),
    ("/api/v1/dags/manual/grid", "state"),
    ("/api/v1/backfills", "state"),
    ("/api/v1/assets/events", "source"),
]


@pytest.mark.parametrize(("url", "name"), BOGUS)
def test_a_value_outside_an_enum_is_422_naming_the_field(api: Api, url: str, name: str):
    body = refused(api.admin.get(url, params={name: "bogus"}), 422, f"query.{name}")
    assert [e["field"] for e in body["errors"]] == [f"query.{name}"]
    assert body["type"] == "invalid"


@pytest.mark.parametrize(
    ("url", "name", "values"),
    [
        (RUNS, "state", [s.value for s in RunState]),
        (RUNS, "run_type", ["manual", "scheduled", "backfill", "asset_triggered"]),
        (TIS, "state", [s.value for s in TaskState]),
        ("/api/v1/dags/manual/grid", "state", [s.value for s in RunState]),
        ("/api/v1/backfills", "state", ["running", "paused", "completed", "cancelled"]),
        ("/api/v1/assets/events", "source", ["task", "external", "watcher"]),
    ],
)
def test_every_value_of_an_enum_is_taken(api: Api, url: str, name: str, values: list[str]):
    for v in values:
        assert api.admin.get(url, params={name: v}).status_code == 200, (name, v)


def test_the_filters_that_match_are_still_filters(api: Api):
    assert api.admin.get(RUNS, params={"state": "queued"}).json()["total"] == 1
    assert api.admin.get(RUNS, params={"state": "success"}).json()["total"] == 1
    assert api.admin.get(RUNS, params={"state": "failed"}).json()["total"] == 0
    assert api.admin.get(RUNS, params={"run_type": "manual"}).json()["total"] == 2
    assert api.admin.get(RUNS, params={"run_type": "scheduled"}).json()["total"] == 0
    assert api.admin.get(TIS, params={"task_id": "first"}).json()["total"] == 1
    assert api.admin.get(TIS, params={"state": "success"}).json()["total"] == 2


def test_a_parameter_the_endpoint_does_not_take_is_422(api: Api):
    body = refused(api.admin.get(RUNS, params={"stat": "failed"}), 422, "query.stat", "state")
    assert [e["field"] for e in body["errors"]] == ["query.stat"]
    refused(api.admin.get("/api/v1/dags", params={"order_by": "dag_id"}), 422, "query.order_by")
    assert api.admin.get("/api/v1/dags", params={"limit": 5, "paused": "false"}).status_code == 200


def test_a_parameter_given_twice_is_422_and_anonymous_callers_learn_nothing(api: Api):
    twice = api.admin.get(RUNS, params=[("state", "failed"), ("state", "success")])
    assert refused(twice, 422, "query.state", "more than once")["errors"][0]["field"] == "query.state"
    refused(api.admin.get("/api/v1/me", params={"x": "1"}), 422, "query.x", "no query parameters")
    # Without credentials the answer is the 401, not a list of the endpoint's parameters.
    refused(api.anon.get(RUNS, params={"stat": "failed"}), 401, "no credentials")
    refused(api.anon.get(RUNS, params={"state": "bogus"}), 401, "no credentials")
    refused(api.anon.get("/api/v1/health", params={"x": "1"}), 422, "query.x")  # open to all anyway


def test_a_date_range_that_ends_before_it_starts_is_422(api: Api):
    params = {"logical_date_gte": "2025-02-01", "logical_date_lte": "2025-01-01"}
    body = refused(api.admin.get(RUNS, params=params), 422, "query.logical_date_gte", "logical_date_lte")
    assert body["errors"][0]["field"] == "query.logical_date_gte"


@pytest.mark.parametrize(
    ("url", "params", "words"),
    [
        ("/api/v1/backfills", {"dag_id": "nope"}, ("no DAG", "'nope'")),
        (RUNS, {"backfill_id": 999}, ("no backfill 999",)),
        (TIS, {"task_id": "nope"}, ("no task 'nope'", "first")),
        ("/api/v1/assets/events", {"source_dag_id": "nope"}, ("no DAG", "'nope'")),
    ],
)
def test_a_filter_naming_what_does_not_exist_is_404(api: Api, url: str, params: dict, words: tuple):
    speaks_http(refused(api.admin.get(url, params=params), 404, *words)["detail"])


# -- errors worded for HTTP clients ---------------------------------------------------------------


def test_not_found_points_at_the_route_that_lists(api: Api):
    cases = [
        ("/api/v1/dags/nope", "GET /api/v1/dags"),
        ("/api/v1/dags/manual/runs/nope", "GET /api/v1/dags/manual/runs"),
        ("/api/v1/backfills/999", "GET /api/v1/backfills"),
        ("/api/v1/connections/nope", "GET /api/v1/connections"),
    ]
    for url, route in cases:
        speaks_http(refused(api.admin.get(url), 404, route)["detail"])
    speaks_http(refused(api.admin.delete("/api/v1/pools/nope"), 404, "GET /api/v1/pools")["detail"])


def test_backfill_and_clear_errors_name_body_fields_not_flags(api: Api):
    body = {"dag_id": "daily", "from_date": "2025-02-10", "to_date": "2025-02-01"}
    got = refused(api.admin.post("/api/v1/backfills", json=body), 422, "from_date", "to_date")
    speaks_http(got["detail"])
    assert [e["field"] for e in got["errors"]] == ["body.from_date", "body.to_date"]
    early = {"dag_id": "daily", "from_date": "2024-01-01", "to_date": "2024-01-05"}
    speaks_http(refused(api.admin.post("/api/v1/backfills", json=early), 422, "start_date")["detail"])
    bad = refused(api.admin.post("/api/v1/dags/manual/clear", json={"task_regex": "("}), 422, "task_regex")
    speaks_http(bad["detail"])
    assert [e["field"] for e in bad["errors"]] == ["body.task_regex"]


def test_a_missing_param_says_to_send_it_in_the_body(api: Api):
    got = refused(api.admin.post("/api/v1/dags/needs_day/runs", json={}), 422, "'day'", '"conf"')
    speaks_http(got["detail"])
    assert [e["field"] for e in got["errors"]] == ["body.conf"]


def test_rendered_fields_not_kept_says_why_without_the_cli(api: Api):
    url = "/api/v1/dags/manual/runs/one/tasks/first/rendered"
    speaks_http(refused(api.admin.get(url), 404, "when a template was rendered")["detail"])


#: Commands only the server's operator can run (the database or the key are wrong): the
#: HTTP client can but pass them on, so they stay as they are.
OPERATOR_COMMANDS = ("`millstream db migrate`", "`millstream rotate-fernet-key --generate`")


def _literal(node: ast.expr) -> str | None:
    """A message's text with each interpolated value as ``X`` (None if it is not literal)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) else "X" for v in node.values if isinstance(v, ast.expr)
        )
    return None


def messages_below_the_api() -> list[tuple[str, str]]:
    """Every literal message of an error raised in the layers the API calls into."""
    files = [SRC / "control.py", SRC / "sdk" / "params.py", *sorted((SRC / "store").glob("*.py"))]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                text = _literal(node.exc.args[0])
                if text is not None:
                    found.append((f"{path.name}:{node.lineno}", text))
    return found


def test_no_message_from_below_reaches_an_http_client_in_cli_words():
    from millstream.api.errors import for_http

    found = messages_below_the_api()
    assert len(found) > 50  # the scan sees the messages it must
    assert any("--from-date" in text for _, text in found)
    for where, text in found:
        worded = for_http(text)
        for command in OPERATOR_COMMANDS:
            worded = worded.replace(command, "")
        assert "`millstream " not in worded, (where, worded)
        assert not re.search(r"(?<![\w-])--[a-z]", worded), (where, worded)


def test_the_cli_keeps_its_own_words():
    from millstream.api.errors import for_http
    from millstream.errors import ParamValidationError

    text = "--from-date 2025-02-10 is after --to-date 2025-02-01"
    assert str(ParamValidationError(text)) == text  # the CLI prints str(error), unchanged
    assert for_http(text) == "from_date 2025-02-10 is after to_date 2025-02-01"
