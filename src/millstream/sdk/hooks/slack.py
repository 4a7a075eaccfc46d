"""``SlackWebhookHook``: post to a Slack incoming webhook whose URL comes from a
connection, as Airflow's slack provider reads it: the password holds the webhook URL,
or just its token part (``T000/B000/XXX``) with the host (default
``https://hooks.slack.com/services``) in front."""

from __future__ import annotations

import json
from typing import Any

import httpx

from millstream.errors import MillstreamError
from millstream.sdk.connection import Connection
from millstream.sdk.hooks.base import BaseHook

DEFAULT_HOST = "https://hooks.slack.com/services"


class SlackWebhookHook(BaseHook):
    conn_name_attr = "slack_webhook_conn_id"
    default_conn_name = "slack_default"
    conn_type = "slackwebhook"
    hook_name = "Slack Incoming Webhook"

    def __init__(
        self,
        slack_webhook_conn_id: str = default_conn_name,
        timeout: int | None = None,
        proxy: str | None = None,
        retry_handlers: Any = None,
        **_: Any,
    ) -> None:
        super().__init__()
        if retry_handlers:
            raise MillstreamError(
                "SlackWebhookHook: retry_handlers are slack_sdk objects, which Millstream does not use; "
                "a notifier retries failed posts on its own"
            )
        self.slack_webhook_conn_id = slack_webhook_conn_id
        self.timeout = timeout
        self.proxy = proxy
        self._conn: Connection | None = None

    @classmethod
    def from_connection(cls, conn: Connection, **hook_params: Any) -> SlackWebhookHook:
        hook = cls(slack_webhook_conn_id=conn.conn_id, **hook_params)
        hook._conn = conn
        return hook

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self.get_connection(self.slack_webhook_conn_id)
        return self._conn

    @property
    def webhook_url(self) -> str:
        c = self.conn
        token = (c.password or "").strip()
        if not token:
            raise MillstreamError(
                f"connection {c.conn_id!r} has no webhook: put the webhook URL (or its T.../B.../... "
                "part) in the connection's password"
            )
        if token.startswith(("http://", "https://")):
            return token
        host = (c.host or DEFAULT_HOST).rstrip("/")
        if "://" not in host:
            host = f"https://{host}"
        return f"{host}/{token.lstrip('/')}"

    def send_dict(self, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> httpx.Response:
        timeout = self.timeout or float(self.conn.extra_dejson.get("timeout", 30))
        with httpx.Client(timeout=timeout, proxy=self.proxy) as client:
            response = client.post(
                self.webhook_url,
                content=json.dumps(body),
                headers={"Content-Type": "application/json", **(headers or {})},
            )
        if response.status_code >= 400:
            raise MillstreamError(
                f"Slack webhook of {self.conn.conn_id!r} answered {response.status_code}: {response.text[:200]}"
            )
        return response

    def send(
        self,
        *,
        text: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "text": text,
            "blocks": blocks,
            "attachments": attachments,
            "unfurl_links": unfurl_links,
            "unfurl_media": unfurl_media,
            **kwargs,
        }
        return self.send_dict({k: v for k, v in body.items() if v is not None}, headers=headers)

    def send_text(self, text: str, **kwargs: Any) -> httpx.Response:
        return self.send(text=text, **kwargs)
