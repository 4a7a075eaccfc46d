"""Notifiers, EmailOperator and task mail through connections, against real servers: an
SMTP server (aiosmtpd) that receives the mail and a local HTTP server that receives the
Slack and webhook posts. A notifier that fails never changes a task's state."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from millstream import (
    DAG,
    BashOperator,
    EmailOperator,
    SlackWebhookNotifier,
    SmtpNotifier,
    WebhookNotifier,
    send_email,
)
from millstream.sdk import masking, secrets
from millstream.sdk.notifications import verify_signature
from tests.conftest import free_port

DAY = datetime(2024, 1, 2, tzinfo=UTC)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[list[str]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            self.envelopes.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture(autouse=True)
def fresh_secrets(home):
    secrets.reset()
    masking.forget_secrets()
    yield
    secrets.reset()


@pytest.fixture
def inbox(monkeypatch):
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "MILLSTREAM_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "alerts@example.com"},
            }
        ),
    )
    secrets.reset()
    yield box
    controller.stop()


class Receiver:
    """A real HTTP server recording POSTs; it answers ``fail_first`` of them with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append((self.path, dict(self.headers), body))
                failing = len(outer.posts) <= outer.fail_first
                self.send_response(500 if failing else 200)
                self.end_headers()
                self.wfile.write(b"boom" if failing else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_smtp_notifier_on_failure_renders_and_sends(inbox):
    with DAG("notify_mail", schedule=None, start_date=DAY) as dag:
        BashOperator(
            task_id="breaks",
            bash_command="exit 2",
            on_failure_callback=SmtpNotifier(
                to="oncall@example.com",
                subject="{{ dag.dag_id }}.{{ ti.task_id }} failed on {{ ds }}",
                html_content="<p>try {{ ti.try_number }}</p>",
            ),
        )
    run = dag.test(logical_date=DAY)
    assert run.ti("breaks").state.value == "failed"
    (msg,) = inbox.messages
    assert msg["Subject"] == "notify_mail.breaks failed on 2024-01-02"
    assert msg["From"] == "alerts@example.com" and msg["To"] == "oncall@example.com"
    assert "try 1" in msg.get_body().get_content()


def test_email_operator_and_send_email_with_cc_bcc_and_files(inbox, tmp_path):
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    with DAG("mailer", schedule=None, start_date=DAY) as dag:
        EmailOperator(
            task_id="mail",
            to=["team@example.com"],
            cc="lead@example.com",
            bcc="audit@example.com",
            subject="Report {{ ds }}",
            html_content="<b>{{ params.who }}</b>",
            files=[str(report)],
            params={"who": "data team"},
        )
    run = dag.test(logical_date=DAY)
    assert run.ti("mail").state.value == "success", run.ti("mail").log
    msg = inbox.messages[0]
    assert msg["Subject"] == "Report 2024-01-02" and msg["CC"] == "lead@example.com" and "Bcc" not in msg
    assert sorted(inbox.envelopes[0]) == ["audit@example.com", "lead@example.com", "team@example.com"]
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "report.csv" and attachment.get_content() == "a,b\n1,2\n"
    send_email("x@example.com", "direct", "<i>hi</i>")
    assert inbox.messages[-1]["Subject"] == "direct"


def test_task_mail_goes_through_the_smtp_default_connection(inbox):
    with DAG("conn_mail", schedule=None, start_date=DAY) as dag:
        BashOperator(task_id="breaks", bash_command="exit 3", email="ops@example.com")
    run = dag.test()
    assert run.ti("breaks").state.value == "failed"
    (msg,) = inbox.messages
    assert msg["From"] == "alerts@example.com" and "[failed]" in msg["Subject"]


def test_slack_webhook_notifier_posts_the_rendered_text(receiver, monkeypatch):
    monkeypatch.setenv(
        "MILLSTREAM_CONN_SLACK_DEFAULT",
        json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": f"http://127.0.0.1:{receiver.port}/services",
                "password": "T0/B0/xyz",
            }
        ),
    )
    secrets.reset()
    with DAG("notify_slack", schedule=None, start_date=DAY) as dag:
        BashOperator(
            task_id="ok",
            bash_command="true",
            on_success_callback=SlackWebhookNotifier(
                text=":white_check_mark: {{ ti.task_id }} {{ ds }}", unfurl_links=False
            ),
        )
    run = dag.test(logical_date=DAY)
    assert run.ti("ok").state.value == "success"
    ((path, headers, body),) = receiver.posts
    assert path == "/services/T0/B0/xyz" and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"text": ":white_check_mark: ok 2024-01-02", "unfurl_links": False}


def test_webhook_notifier_signs_and_retries_a_failing_receiver(monkeypatch):
    r = Receiver(fail_first=2)
    try:
        monkeypatch.setenv(
            "MILLSTREAM_CONN_HOOKS",
            json.dumps(
                {
                    "conn_type": "http",
                    "extra": {"url": f"http://127.0.0.1:{r.port}/in"},
                    "password": "sign-key-123",
                }
            ),
        )
        secrets.reset()
        notifier = WebhookNotifier(conn_id="hooks")
        notifier.notify_retry_delay = 0.01
        with DAG("notify_hook", schedule=None, start_date=DAY, on_failure_callback=notifier) as dag:
            BashOperator(task_id="breaks", bash_command="exit 1")
        run = dag.test(logical_date=DAY)
        assert run.state.value == "failed"
        assert len(r.posts) == 3  # two 500s, then delivered
        _, headers, body = r.posts[-1]
        assert verify_signature(
            "sign-key-123", body, headers["X-Millstream-Timestamp"], headers["X-Millstream-Signature"]
        )
        assert not verify_signature(
            "wrong", body, headers["X-Millstream-Timestamp"], headers["X-Millstream-Signature"]
        )
        payload = json.loads(body)
        assert payload["dag_id"] == "notify_hook" and payload["run_id"] == run.run_id
    finally:
        r.close()


def test_a_notifier_that_keeps_failing_changes_no_state(monkeypatch):
    r = Receiver(fail_first=100)
    try:
        notifier = WebhookNotifier(url=f"http://127.0.0.1:{r.port}/in")
        notifier.notify_retry_delay = 0.01
        with DAG("notify_broken", schedule=None, start_date=DAY) as dag:
            BashOperator(task_id="ok", bash_command="true", on_success_callback=notifier)
        run = dag.test()
        assert run.state.value == "success" and run.ti("ok").state.value == "success"
        assert len(r.posts) == notifier.notify_retries + 1  # bounded
        assert "raised; the outcome stands" in run.ti("ok").log and "answered 500" in run.ti("ok").log
    finally:
        r.close()
