"""HttpHook, HttpOperator and HttpSensor against a real HTTP server started here (stdlib
http.server in a thread): no mocks. Waiting is counted by the server, never slept out."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from millstream import DAG, task
from millstream.core.states import RunState
from millstream.core.states import TaskState as S
from millstream.errors import MillstreamError
from millstream.sdk import secrets
from millstream.sdk.connection import Connection
from millstream.sdk.hooks.http import HttpErrorException, HttpHook, HttpResponse
from millstream.sdk.standard.http import (
    HttpOperator,
    HttpSensor,
    HttpSensorTrigger,
    HttpTrigger,
    deserialize_response,
    serialize_response,
)

DAY = datetime(2024, 3, 5, tzinfo=UTC)
BASIC = "Basic " + base64.b64encode(b"alice:s3cret").decode()


class Api:
    """The server. Paths:

    /                200 ``hello``
    /echo            answers what it got (method, path, query, headers, body) as JSON
    /auth            200 with the right basic auth, 401 otherwise
    /status/<code>   that status, with body ``boom <code>``
    /ready/<key>?after=n   404 for the first n calls of that key, then 200 {"ready": true}
    /flaky/<key>?fails=n   503 for the first n calls, then 200
    /drop/<key>?fails=n    closes the connection unanswered n times, then 200
    /pages?page=n    JSON {"items": [n], "next": n+1} up to page 3
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, body: object, ctype: str = "application/json") -> None:
                raw = (json.dumps(body) if ctype == "application/json" else str(body)).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = url.path.strip("/").split("/")
                api.calls[url.path] += 1
                n = api.calls[url.path]
                if parts == [""]:
                    self._answer(200, "hello", "text/plain")
                elif parts[0] == "echo":
                    self._answer(
                        200,
                        {
                            "method": self.command,
                            "path": url.path,
                            "query": query,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        },
                    )
                elif parts[0] == "auth":
                    if self.headers.get("Authorization") == BASIC:
                        self._answer(200, {"user": "alice"})
                    else:
                        self._answer(401, "who are you?", "text/plain")
                elif parts[0] == "status":
                    self._answer(int(parts[1]), f"boom {parts[1]}", "text/plain")
                elif parts[0] == "ready":
                    ready = n > int(query.get("after", 0))
                    self._answer(200 if ready else 404, {"ready": ready, "call": n})
                elif parts[0] == "flaky":
                    failing = n <= int(query.get("fails", 0))
                    self._answer(503 if failing else 200, "busy" if failing else "ok", "text/plain")
                elif parts[0] == "drop":
                    if n <= int(query.get("fails", 0)):
                        self.close_connection = True  # no status line: a transport error
                        return
                    self._answer(200, "ok", "text/plain")
                elif parts[0] == "pages":
                    page = int(query.get("page", 1))
                    self._answer(200, {"items": [page], "next": page + 1 if page < 3 else None})
                else:
                    self._answer(404, "no such path", "text/plain")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def api():
    server = Api()
    yield server
    server.close()


@pytest.fixture
def conn(api, monkeypatch):
    """Sets connections: ``api`` (plain URI with login), ``api_json`` (JSON with headers in
    the extra, Airflow's flat header keys and the ``headers`` mapping), ``api_anon``."""

    def setconn(conn_id: str, value: str) -> None:
        monkeypatch.setenv(f"MILLSTREAM_CONN_{conn_id.upper()}", value)

    setconn("api", f"http://alice:s3cret@127.0.0.1:{api.port}")
    setconn("api_anon", f"http://127.0.0.1:{api.port}")
    setconn(
        "api_json",
        json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": api.port,
                "schema": "http",
                "extra": {"headers": {"X-Team": "data"}, "X-Flat": "yes", "timeout": 5},
            }
        ),
    )
    secrets.reset()
    yield setconn
    secrets.reset()


# -- the hook ------------------------------------------------------------------------------------


def test_base_url_as_airflow_builds_it():
    def url(**fields):
        return HttpHook.from_connection(
            Connection(conn_id="c", conn_type="http", **fields)
        ).url_from_endpoint("v1/x")

    assert url(host="example.com") == "http://example.com/v1/x"
    assert url(host="example.com", schema="https", port=8443) == "https://example.com:8443/v1/x"
    assert (
        url(host="https://example.com/api/") == "https://example.com/api/v1/x"
    )  # the host's own scheme wins
    assert url(host="https://example.com", schema="ftp") == "https://example.com/v1/x"


def test_get_puts_data_in_the_query(api, conn):
    response = HttpHook(method="GET", http_conn_id="api_anon").run("echo", data={"a": "1", "b": "x y"})
    assert isinstance(response, HttpResponse)
    assert (response.status_code, response.ok, response.reason) == (200, True, "OK")
    got = response.json()
    assert (got["method"], got["query"], got["body"]) == ("GET", {"a": "1", "b": "x y"}, "")
    assert response.raise_for_status() is response


def test_post_json_and_form_and_raw_bodies(api, conn):
    hook = HttpHook(http_conn_id="api_anon")  # POST is the default method, as in Airflow
    got = hook.run("/echo", json={"rows": [1, 2]}).json()
    assert (got["method"], json.loads(got["body"]), got["headers"]["content-type"]) == (
        "POST",
        {"rows": [1, 2]},
        "application/json",
    )
    assert hook.run("echo", data={"k": "v"}).json()["body"] == "k=v"
    assert hook.run("echo", data="raw text").json()["body"] == "raw text"
    assert HttpHook(method="PUT", http_conn_id="api_anon").run("echo", data="x").json()["method"] == "PUT"


def test_headers_from_the_connection_extra_and_the_call(api, conn):
    response = HttpHook(method="GET", http_conn_id="api_json").run("echo", headers={"X-Call": "1"})
    headers = response.json()["headers"]
    assert (headers["x-team"], headers["x-flat"], headers["x-call"]) == ("data", "yes", "1")
    assert "timeout" not in headers  # an option key, not a header
    with HttpHook(http_conn_id="api_json").get_conn(headers={"X-Client": "2"}) as client:
        assert isinstance(client, httpx.Client)
        got = client.get("/echo").json()["headers"]
    assert (got["x-team"], got["x-client"]) == ("data", "2")


def test_basic_auth_from_login_and_password(api, conn):
    assert HttpHook(method="GET", http_conn_id="api").run("auth").json() == {"user": "alice"}
    with pytest.raises(HttpErrorException) as e:
        HttpHook(method="GET", http_conn_id="api_anon").run("auth")
    assert str(e.value).startswith("401:Unauthorized")
    # auth_type overrides the class that login and password are given to
    wrong = HttpHook(
        method="GET", http_conn_id="api", auth_type=lambda user, pw: httpx.BasicAuth(user, "nope")
    )
    assert wrong.run("auth", extra_options={"check_response": False}).status_code == 401


@pytest.mark.parametrize("code,reason", [(404, "Not Found"), (500, "Internal Server Error")])
def test_error_statuses_name_status_and_body(api, conn, code, reason):
    with pytest.raises(HttpErrorException) as e:
        HttpHook(method="GET", http_conn_id="api_anon").run(f"status/{code}")
    assert str(e.value).startswith(f"{code}:{reason}")
    assert f"boom {code}" in str(e.value)
    assert isinstance(e.value, MillstreamError) and e.value.status_code == code


def test_check_response_false_returns_the_error_response(api, conn):
    response = HttpHook(method="GET", http_conn_id="api_anon").run(
        "status/503", extra_options={"check_response": False}
    )
    assert (response.status_code, response.ok, response.text) == (503, False, "boom 503")
    with pytest.raises(httpx.HTTPStatusError):
        response.raise_for_status()


def test_unknown_extra_options_are_refused(api, conn):
    with pytest.raises(MillstreamError, match="unknown extra_options bogus"):
        HttpHook(http_conn_id="api_anon").run("echo", extra_options={"bogus": 1})


def test_test_connection(api, conn):
    assert Connection.get("api").test_connection() == (True, "Connection successfully tested")
    from tests.conftest import free_port

    conn("nowhere", f"http://127.0.0.1:{free_port()}")
    secrets.reset()
    ok, message = HttpHook(method="GET", http_conn_id="nowhere").test_connection()
    assert not ok and "refused" in message.lower()


def test_run_with_advanced_retry_recovers(api, conn):
    hook = HttpHook(method="GET", http_conn_id="api_anon")
    response = hook.run_with_advanced_retry({"stop_after_attempt": 3, "wait": 0}, "flaky/a?fails=2")
    assert (response.text, api.calls["/flaky/a"]) == ("ok", 3)
    response = hook.run_with_advanced_retry({"stop_after_attempt": 3, "wait": 0}, endpoint="drop/a?fails=2")
    assert (response.text, api.calls["/drop/a"]) == ("ok", 3)  # dropped connections are retried too
    with pytest.raises(HttpErrorException, match="^503"):
        hook.run_with_advanced_retry({"stop_after_attempt": 2, "wait": 0}, "flaky/b?fails=2")
    assert api.calls["/flaky/b"] == 2
    with pytest.raises(HttpErrorException, match="^404"):  # a 4xx is not retried
        hook.run_with_advanced_retry({"stop_after_attempt": 3, "wait": 0}, "status/404/x")
    assert api.calls["/status/404/x"] == 1


def test_a_response_survives_serialization(api, conn):
    response = HttpHook(method="GET", http_conn_id="api_anon").run("echo", data={"q": "1"})
    back = deserialize_response(json.loads(json.dumps(serialize_response(response))))
    assert (back.status_code, back.json(), back.ok, str(back.url)) == (
        200,
        response.json(),
        True,
        str(response.url),
    )


# -- the operator in a DAG -----------------------------------------------------------------------


def _collect(dag_id, make):
    got = []
    with DAG(dag_id, schedule=None, start_date=DAY) as dag:
        op = make()

        @task
        def keep(value):
            got.append(value)

        keep(op.output)
    return dag.test(logical_date=DAY), got


def test_operator_check_and_filter_give_the_xcom(api, conn):
    def check(response, ds):
        return response.ok and ds == "2024-03-05"

    run, got = _collect(
        "http_filter",
        lambda: HttpOperator(
            task_id="call",
            http_conn_id="api",
            endpoint="echo/{{ ds }}",
            method="GET",
            data={"day": "{{ ds_nodash }}"},
            response_check=check,
            response_filter=lambda response, ti: (
                response.json()["path"],
                response.json()["query"],
                ti.task_id,
            ),
        ),
    )
    assert run.state is RunState.SUCCESS, run.ti("call").reason
    assert got == [["/echo/2024-03-05", {"day": "20240305"}, "call"]]
    assert run.ti("call").rendered["endpoint"] == "echo/2024-03-05"


def test_operator_default_result_is_the_text_and_a_failed_check_fails(api, conn):
    run, got = _collect(
        "http_text", lambda: HttpOperator(task_id="call", http_conn_id="api", endpoint="auth", method="GET")
    )
    assert got == ['{"user": "alice"}']
    run, _ = _collect(
        "http_check",
        lambda: HttpOperator(
            task_id="call", http_conn_id="api", endpoint="auth", method="GET", response_check=lambda r: False
        ),
    )
    assert run.ti("call").state is S.FAILED
    assert "Response check returned False" in run.ti("call").reason


def test_operator_fails_with_the_status_and_body(api, conn):
    run, _ = _collect(
        "http_500",
        lambda: HttpOperator(task_id="call", http_conn_id="api", endpoint="status/500", method="GET"),
    )
    assert run.ti("call").state is S.FAILED
    assert "500:Internal Server Error" in run.ti("call").reason and "boom 500" in run.ti("call").reason


def _next_page(response):
    following = response.json()["next"]
    return {"data": {"page": following}} if following else None


@pytest.mark.parametrize("deferrable", [False, True])
def test_pagination(api, conn, deferrable):
    run, got = _collect(
        f"http_pages_{deferrable}",
        lambda: HttpOperator(
            task_id="call",
            http_conn_id="api",
            endpoint="pages",
            method="GET",
            data={"page": 1},
            pagination_function=_next_page,
            response_filter=lambda responses: [i for r in responses for i in r.json()["items"]],
            deferrable=deferrable,
        ),
    )
    assert run.state is RunState.SUCCESS, run.ti("call").reason
    assert got == [[1, 2, 3]]


def test_deferrable_operator_calls_from_the_trigger(api, conn):
    run, got = _collect(
        "http_deferred",
        lambda: HttpOperator(
            task_id="call",
            http_conn_id="api_json",
            endpoint="echo/{{ ds }}",
            method="POST",
            request_kwargs={"json": {"n": 1}},
            response_filter=lambda r: (r.json()["headers"]["x-team"], json.loads(r.json()["body"])),
            deferrable=True,
        ),
    )
    assert run.state is RunState.SUCCESS, run.ti("call").reason
    assert "deferring: waiting on millstream.sdk.standard.http.HttpTrigger" in run.ti("call").log
    assert got == [["data", {"n": 1}]]
    failed, _ = _collect(
        "http_deferred_500",
        lambda: HttpOperator(
            task_id="call", http_conn_id="api", endpoint="status/500", method="GET", deferrable=True
        ),
    )
    assert failed.ti("call").state is S.FAILED and "boom 500" in failed.ti("call").reason


def test_triggers_round_trip():
    for trigger in (
        HttpTrigger(http_conn_id="a", auth_type="httpx.BasicAuth", endpoint="e", data={"x": 1}),
        HttpSensorTrigger(endpoint="e", poke_interval=0.5, response_error_codes_allowlist=["404", "503"]),
    ):
        classpath, kwargs = trigger.serialize()
        assert type(trigger)(**kwargs).serialize() == (classpath, kwargs)
    with pytest.raises(ValueError, match="tenacity objects"):
        with DAG("refused", schedule=None, start_date=DAY):
            HttpOperator(task_id="t", deferrable=True, retry_args={"stop": object()})


# -- the sensor ----------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_waits_through_404s(api, conn, deferrable):
    key = f"s{deferrable}"
    with DAG(f"http_sensor_{deferrable}", schedule=None, start_date=DAY) as dag:
        HttpSensor(
            task_id="wait",
            http_conn_id="api",
            endpoint=f"ready/{key}",
            request_params={"after": "3"},
            poke_interval=0.01,
            timeout=10,
            deferrable=deferrable,
        )
    run = dag.test(logical_date=DAY)
    assert run.ti("wait").state is S.SUCCESS, run.ti("wait").reason
    assert api.calls[f"/ready/{key}"] == 4  # three 404s, then the 200
    if deferrable:
        assert "deferring: waiting on millstream.sdk.standard.http.HttpSensorTrigger" in run.ti("wait").log


@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_response_check_keeps_it_waiting(api, conn, deferrable):
    key = f"c{deferrable}"
    with DAG(f"http_sensor_check_{deferrable}", schedule=None, start_date=DAY) as dag:
        HttpSensor(
            task_id="wait",
            http_conn_id="api",
            endpoint=f"ready/{key}",
            response_error_codes_allowlist=[],
            extra_options={"check_response": False},  # every status goes to the check
            response_check=lambda response: response.json()["call"] >= 3,
            poke_interval=0.01,
            timeout=10,
            deferrable=deferrable,
        )
    run = dag.test(logical_date=DAY)
    assert run.ti("wait").state is S.SUCCESS, run.ti("wait").reason
    assert api.calls[f"/ready/{key}"] == 3


@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_fails_on_a_500(api, conn, deferrable):
    with DAG(f"http_sensor_500_{deferrable}", schedule=None, start_date=DAY) as dag:
        HttpSensor(
            task_id="wait",
            http_conn_id="api",
            endpoint=f"status/500?d={deferrable}",
            poke_interval=0.01,
            timeout=10,
            deferrable=deferrable,
        )
    run = dag.test(logical_date=DAY)
    assert run.ti("wait").state is S.FAILED
    assert "500:Internal Server Error" in run.ti("wait").reason
    assert api.calls["/status/500"] >= 1


def test_sensor_allowlist_can_take_other_codes(api, conn):
    with DAG("http_sensor_allow", schedule=None, start_date=DAY) as dag:
        HttpSensor(
            task_id="wait",
            http_conn_id="api",
            endpoint="flaky/sensor?fails=2",
            response_error_codes_allowlist=["503"],
            poke_interval=0.01,
            timeout=10,
        )
    run = dag.test(logical_date=DAY)
    assert run.ti("wait").state is S.SUCCESS, run.ti("wait").reason
    assert api.calls["/flaky/sensor"] == 3
