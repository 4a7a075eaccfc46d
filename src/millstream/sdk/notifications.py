"""Notifiers: Airflow's ``BaseNotifier`` and the notifiers people reach for first —
mail (``SmtpNotifier``), Slack (``SlackWebhookNotifier``) and any HTTP endpoint
(``WebhookNotifier``, JSON with an HMAC signature).

A notifier is a callable for any ``on_*_callback`` of a task or DAG and for a
``DeadlineAlert``. Its template fields are rendered against the callback's context
(``{{ dag.dag_id }}``, ``{{ ti.task_id }}``, ``{{ var.value.x }}``) on a copy, so a
notifier shared by many tasks is never rendered twice. Sending is retried a bounded
number of times with a short pause (a chat service's hiccup should not lose the alert);
a notifier that still fails is logged and raises to the callback runner, which reports
it in the log and never lets it change a task's or run's state.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from millstream.errors import MillstreamError

log = logging.getLogger(__name__)


class BaseNotifier:
    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    #: Extra sends after a failed one, and the first pause between them (doubling).
    notify_retries = 2
    notify_retry_delay = 1.0

    def __init__(self, context: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected argument(s): {', '.join(sorted(kwargs))}")
        self.context = dict(context or {})
        self.log = logging.getLogger(f"{type(self).__module__}.{type(self).__name__}")

    def notify(self, context: Mapping[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement notify(context)")

    def render_template_fields(
        self, context: Mapping[str, Any], jinja_env: jinja2.Environment | None = None
    ) -> None:
        """Render the template fields in place against ``context``."""
        dag = context.get("dag")
        if jinja_env is None and dag is not None and hasattr(dag, "render_template_as_native_obj"):
            from millstream.sdk.templating import Renderer

            Renderer(dag, context, where=f"notifier {type(self).__name__}").render_fields(
                self, self.template_fields, tuple(self.template_ext)
            )
            return
        env = jinja_env or SandboxedEnvironment(undefined=jinja2.StrictUndefined)
        for name in self.template_fields:
            setattr(self, name, _render_plain(env, getattr(self, name, None), context))

    def __call__(self, *args: Any) -> None:
        if len(args) != 1 or not isinstance(args[0], Mapping):
            raise MillstreamError(
                f"{type(self).__name__} is called with the callback's context; Airflow 2's SLA-miss "
                "signature (dag, task_list, ...) is gone in Airflow 3 and Millstream (use a DeadlineAlert)"
            )
        context: dict[str, Any] = {**self.context, **args[0]}
        for name in self.template_fields:
            context.setdefault(name, getattr(self, name, None))
        target = copy.copy(self)  # rendered on a copy: the DAG's notifier keeps its templates
        target.render_template_fields(context)
        delay = self.notify_retry_delay
        for attempt in range(self.notify_retries + 1):
            try:
                target.notify(context)
                return
            except Exception as e:
                # A missing connection or a bad setting will not fix itself: no retry.
                if attempt == self.notify_retries or isinstance(e, (KeyError, TypeError, ValueError)):
                    self.log.error("%s failed %d time(s), giving up: %s", type(self).__name__, attempt + 1, e)
                    raise
                self.log.warning("%s failed (%s); trying again in %.1fs", type(self).__name__, e, delay)
                time.sleep(delay)
                delay *= 2


def _render_plain(env: jinja2.Environment, value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return env.from_string(value).render(**context) if "{" in value else value
    if isinstance(value, list):
        return [_render_plain(env, v, context) for v in value]
    if isinstance(value, tuple):
        return tuple(_render_plain(env, v, context) for v in value)
    if isinstance(value, dict):
        return {k: _render_plain(env, v, context) for k, v in value.items()}
    return value


DEFAULT_SUBJECT = "Millstream: {{ dag.dag_id }}{% if ti %}.{{ ti.task_id }}{% endif %} {{ run_id }}"
DEFAULT_HTML = (
    "<p>DAG <b>{{ dag.dag_id }}</b>, run <b>{{ run_id }}</b>"
    "{% if ti %}, task <b>{{ ti.task_id }}</b> (try {{ ti.try_number }}): {{ ti.state }}{% endif %}.</p>"
    "{% if exception %}<pre>{{ exception }}</pre>{% endif %}"
)


class SmtpNotifier(BaseNotifier):
    """Mail through an SMTP connection (Airflow's ``SmtpNotifier``)."""

    template_fields = ("from_email", "to", "subject", "html_content", "files", "cc", "bcc", "custom_headers")
    template_ext = (".html", ".jinja2")

    def __init__(
        self,
        to: str | Sequence[str],
        from_email: str | None = None,
        subject: str | None = None,
        html_content: str | None = None,
        files: list[str] | None = None,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        mime_subtype: str = "mixed",
        mime_charset: str = "utf-8",
        custom_headers: dict[str, Any] | None = None,
        smtp_conn_id: str | None = None,
        auth_type: str = "basic",
        *,
        template: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.from_email = from_email
        self.subject = subject if subject is not None else DEFAULT_SUBJECT
        if html_content is None and template is not None:
            try:
                with open(template, encoding="utf-8") as f:
                    html_content = f.read()
            except OSError as e:
                raise MillstreamError(f"SmtpNotifier: cannot read template {template!r}: {e}") from None
        self.html_content = html_content if html_content is not None else DEFAULT_HTML
        self.files = files or []
        self.cc = cc
        self.bcc = bcc
        self.mime_subtype = mime_subtype
        self.mime_charset = mime_charset
        self.custom_headers = custom_headers or {}
        self.smtp_conn_id = smtp_conn_id or "smtp_default"
        self.auth_type = auth_type

    def notify(self, context: Mapping[str, Any]) -> None:
        from millstream.sdk.hooks.smtp import send_email

        send_email(
            to=self.to,
            subject=self.subject,
            html_content=self.html_content,
            from_email=self.from_email,
            files=self.files,
            cc=self.cc,
            bcc=self.bcc,
            mime_subtype=self.mime_subtype,
            mime_charset=self.mime_charset,
            custom_headers=self.custom_headers,
            conn_id=self.smtp_conn_id,
            auth_type=self.auth_type,
        )


class SlackWebhookNotifier(BaseNotifier):
    """Post to a Slack incoming webhook (Airflow's ``SlackWebhookNotifier``)."""

    template_fields = (
        "slack_webhook_conn_id",
        "text",
        "blocks",
        "unfurl_links",
        "unfurl_media",
        "proxy",
        "timeout",
        "attachments",
    )

    def __init__(
        self,
        *,
        slack_webhook_conn_id: str = "slack_default",
        text: str = "This is a default message",
        blocks: list[dict[str, Any]] | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        proxy: str | None = None,
        timeout: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        retry_handlers: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.slack_webhook_conn_id = slack_webhook_conn_id
        self.text = text
        self.blocks = blocks
        self.unfurl_links = unfurl_links
        self.unfurl_media = unfurl_media
        self.proxy = proxy
        self.timeout = timeout
        self.attachments = attachments
        self.retry_handlers = retry_handlers

    def notify(self, context: Mapping[str, Any]) -> None:
        from millstream.sdk.hooks.slack import SlackWebhookHook

        hook = SlackWebhookHook(
            slack_webhook_conn_id=self.slack_webhook_conn_id,
            proxy=self.proxy,
            timeout=self.timeout,
            retry_handlers=self.retry_handlers,
        )
        hook.send(
            text=self.text,
            blocks=self.blocks,
            unfurl_links=self.unfurl_links,
            unfurl_media=self.unfurl_media,
            attachments=self.attachments,
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


class WebhookNotifier(BaseNotifier):
    """POST a JSON summary (or your templated ``payload``) to an HTTP endpoint.

    The URL is ``url`` or comes from connection ``conn_id`` (its extra ``url``, else
    ``https://host:port/schema``; an ``http`` scheme may lead the host). When the
    connection has a password, the body is signed with it: header
    ``X-Millstream-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with the
    timestamp in ``X-Millstream-Timestamp``, so the receiver can check both who sent it
    and that it is not a replay.
    """

    template_fields = ("url", "payload", "headers")
    SIGNATURE_HEADER = "X-Millstream-Signature"
    TIMESTAMP_HEADER = "X-Millstream-Timestamp"

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        url: str | None = None,
        payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not conn_id and not url:
            raise MillstreamError(
                "WebhookNotifier needs url= or conn_id= (a connection holding the URL and signing key)"
            )
        self.conn_id = conn_id
        self.url = url
        self.payload = payload
        self.headers = headers or {}
        self.timeout = timeout

    @staticmethod
    def summary(context: Mapping[str, Any]) -> dict[str, Any]:
        ti = context.get("ti")
        dag = context.get("dag")
        out = {
            "dag_id": getattr(dag, "dag_id", context.get("dag_id")),
            "run_id": context.get("run_id"),
            "logical_date": _jsonable(context.get("logical_date")),
            "task_id": getattr(ti, "task_id", None),
            "map_index": getattr(ti, "map_index", None),
            "try_number": getattr(ti, "try_number", None),
            "state": getattr(ti, "state", None),
            "reason": str(context.get("exception") or context.get("reason") or "") or None,
        }
        return out

    def notify(self, context: Mapping[str, Any]) -> None:
        import httpx

        from millstream.sdk.connection import Connection

        conn = Connection.get(self.conn_id) if self.conn_id else None
        url = self.url or (conn and _conn_url(conn))
        if not url:
            raise MillstreamError(
                f"WebhookNotifier: connection {self.conn_id!r} gives no URL (set its host or extra url)"
            )
        body = json.dumps(
            self.payload if self.payload is not None else self.summary(context), default=str
        ).encode()
        headers = {"Content-Type": "application/json", **{k: str(v) for k, v in self.headers.items()}}
        if conn is not None and conn.password:
            stamp = str(int(time.time()))
            digest = hmac.new(
                conn.password.encode(), stamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            headers[self.TIMESTAMP_HEADER] = stamp
            headers[self.SIGNATURE_HEADER] = f"sha256={digest}"
        response = httpx.post(url, content=body, headers=headers, timeout=self.timeout)
        if response.status_code >= 400:
            raise MillstreamError(f"webhook {url} answered {response.status_code}: {response.text[:200]}")


def _conn_url(conn: Any) -> str | None:
    extra_url = conn.extra_dejson.get("url")
    if extra_url:
        return str(extra_url)
    if not conn.host:
        return None
    host = (
        conn.host
        if "://" in conn.host
        else f"{conn.schema if conn.schema in ('http', 'https') else 'https'}://{conn.host}"
    )
    port = f":{conn.port}" if conn.port else ""
    path = "" if conn.schema in (None, "", "http", "https") else "/" + conn.schema.lstrip("/")
    return f"{host}{port}{path}"


def verify_signature(
    secret: str, body: bytes, timestamp: str, signature: str, *, tolerance: float = 300.0
) -> bool:
    """For receivers: does ``signature`` sign ``body`` at ``timestamp`` with ``secret``,
    and is the timestamp within ``tolerance`` seconds of now?"""
    try:
        if abs(time.time() - int(timestamp)) > tolerance:
            return False
    except ValueError:
        return False
    expected = (
        "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    return hmac.compare_digest(expected, signature)


# Airflow's function-style aliases.
send_smtp_notification = SmtpNotifier
send_slack_webhook_notification = SlackWebhookNotifier
