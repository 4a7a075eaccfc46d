"""Task mail (email, email_on_failure, email_on_retry) through a real SMTP server
(aiosmtpd on a free local port), sent from the worker and, for an attempt that ended
outside its worker (a timeout), from the scheduler's callback process."""

from __future__ import annotations

import email
import email.policy
import textwrap
import threading
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller

from millstream import DAG, BashOperator
from tests.conftest import free_port

from .conftest import wait_for


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [m["Subject"] for m in self.messages]


@pytest.fixture
def inbox(monkeypatch):
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("MILLSTREAM__SMTP__SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MILLSTREAM__SMTP__SMTP_PORT", str(port))
    monkeypatch.setenv("MILLSTREAM__SMTP__SMTP_MAIL_FROM", "pipelines@example.com")
    yield box
    controller.stop()


def test_retry_and_failure_mail_from_the_worker(inbox):
    with DAG("mailing", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        BashOperator(
            task_id="breaks",
            bash_command="exit 3",
            email="ops@example.com; data@example.com",
            retries=1,
            retry_delay=timedelta(0),
        )
        BashOperator(
            task_id="quiet_retry",
            bash_command="exit 4",
            email=["ops@example.com"],
            email_on_retry=False,
            retries=1,
            retry_delay=timedelta(0),
        )
        BashOperator(
            task_id="no_mail", bash_command="exit 5", email="ops@example.com", email_on_failure=False
        )
    run = dag.test()
    assert run.state.value == "failed"
    subjects = sorted(inbox.subjects())
    rid = run.run_id
    assert subjects == sorted(
        [
            f"Millstream alert: mailing.breaks {rid} [up_for_retry]",
            f"Millstream alert: mailing.breaks {rid} [failed]",
            f"Millstream alert: mailing.quiet_retry {rid} [failed]",
        ]
    )
    first = next(m for m in inbox.messages if "breaks" in m["Subject"] and "retry" in m["Subject"])
    assert first["To"] == "ops@example.com, data@example.com"
    assert first["From"] == "pipelines@example.com"
    body = first.get_content()
    assert "Try: 1" in body and "exited with code 3" in body and "/tasks/breaks?map_index=-1" in body
    assert "mailed ops@example.com, data@example.com" in run.ti("breaks").log


def test_a_mail_server_that_is_down_changes_nothing(monkeypatch):
    monkeypatch.setenv("MILLSTREAM__SMTP__SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MILLSTREAM__SMTP__SMTP_PORT", str(free_port()))  # nobody listens
    with DAG("mail_down", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:
        BashOperator(task_id="breaks", bash_command="exit 3", email="ops@example.com")
    run = dag.test()
    assert run.states() == {"breaks": run.ti("breaks").state} and run.ti("breaks").state.value == "failed"
    assert (
        "could not mail ops@example.com (connection smtp_default, else the [smtp] settings): ConnectionRefusedError"
        in run.ti("breaks").log
    )


def test_a_timed_out_attempt_is_mailed_from_the_scheduler_side(harness, inbox, tmp_path):
    harness.write_dag(
        "slow.py",
        textwrap.dedent(
            """
            from datetime import timedelta
            from millstream import BashOperator, dag

            @dag(schedule=None)
            def slow():
                BashOperator(
                    task_id="hangs",
                    bash_command="sleep 120",
                    execution_timeout=timedelta(seconds=1),
                    email="oncall@example.com",
                )

            slow()
            """
        ),
    )
    harness.start()
    run_id = harness.trigger("slow")
    assert harness.wait_run("slow", run_id, timeout=60) == "failed"
    wait_for(lambda: inbox.subjects(), 60, "the failure mail")
    assert inbox.subjects() == [f"Millstream alert: slow.hangs {run_id} [failed]"]
    assert "execution_timeout of 1.0s exceeded" in inbox.messages[0].get_content()
