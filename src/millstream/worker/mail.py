"""Task mail: Airflow's ``email``, ``email_on_failure`` and ``email_on_retry``.

A task with ``email`` set gets a message when an attempt fails and will be retried
(``email_on_retry``) and when it fails for good (``email_on_failure``); both default to
true, as in Airflow. Mail goes through the connection ``smtp_default`` if one is defined,
else the SMTP server of the ``[smtp]`` settings, from
where the outcome is known: the worker right after the attempt, or the scheduler's
callback process when the attempt ended outside its worker (timed out, lost). Sending
is best effort like a callback: a mail server that is down is logged in the attempt's
log and changes no state.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, TextIO
from urllib.parse import quote

from millstream.sdk.mail import wanted


def message(
    *,
    to: list[str],
    sender: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int | None,
    kind: str,
    error: str | None,
    ui_url: str,
) -> EmailMessage:
    state = "up_for_retry" if kind == "on_retry_callback" else "failed"
    idx = f"[{map_index}]" if map_index >= 0 else ""
    msg = EmailMessage()
    msg["Subject"] = f"Millstream alert: {dag_id}.{task_id}{idx} {run_id} [{state}]"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    link = (
        f"{ui_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
        f"?map_index={map_index}"
    )
    lines = [
        f"Task {task_id}{idx} of DAG {dag_id}, run {run_id}: {state}.",
        f"Try: {try_number}" if try_number else "",
        f"Error: {error or 'unknown'}",
        f"Host: {socket.gethostname()}",
        f"Log: {link}",
        f"At: {datetime.now(UTC).isoformat()}",
    ]
    msg.set_content("\n".join(line for line in lines if line) + "\n")
    return msg


def send(msg: EmailMessage, settings: Any) -> None:
    """Send through the SMTP connection ``smtp_default`` when one is defined (as Airflow 3
    sends task mail through its ``email_conn_id``), else through the ``[smtp]`` settings
    (raises what smtplib raises)."""
    from millstream.sdk.connection import Connection, ConnectionNotFoundError

    try:
        conn = Connection.get("smtp_default")
    except ConnectionNotFoundError:
        conn = None
    if conn is not None:
        from millstream.sdk.hooks.smtp import SmtpHook

        hook = SmtpHook.from_connection(conn)
        if hook.from_email and "From" in msg:
            msg.replace_header("From", hook.from_email)
        with hook:
            assert hook._client is not None
            hook._client.send_message(msg)
        return
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.smtp_timeout
    if settings.smtp_ssl:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if settings.smtp_starttls and not settings.smtp_ssl:
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password or "")
        client.send_message(msg)


def send_task_alert(
    config: Mapping[str, Any],
    kind: str,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int | None,
    error: str | None,
    log: TextIO,
) -> None:
    """Mail the task's ``email`` about this outcome if it asks for it; never raises."""
    to = wanted(config, kind)
    if not to:
        return
    from millstream.settings import Settings

    try:
        settings = Settings.load()
        msg = message(
            to=to,
            sender=settings.smtp_mail_from,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
            kind=kind,
            error=error,
            ui_url=f"http://{settings.host}:{settings.port}",
        )
        send(msg, settings)
        print(f"[{datetime.now(UTC).isoformat()}] mailed {', '.join(to)}: {msg['Subject']}", file=log)
    except Exception as e:  # noqa: BLE001 - mail is best effort, like a callback
        print(
            f"[{datetime.now(UTC).isoformat()}] could not mail {', '.join(to)} (connection smtp_default, "
            f"else the [smtp] settings): {type(e).__name__}: {e}",
            file=log,
        )
