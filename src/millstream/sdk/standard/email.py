"""``EmailOperator``: send a templated mail through an SMTP connection (Airflow's smtp
provider operator, with its arguments)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from millstream.sdk.baseoperator import BaseOperator


class EmailOperator(BaseOperator):
    template_fields: Sequence[str] = ("to", "from_email", "subject", "html_content", "files", "cc", "bcc")
    template_fields_renderers = {"html_content": "html"}
    template_ext: Sequence[str] = (".html",)
    ui_color = "#e6faf9"

    def __init__(
        self,
        *,
        to: list[str] | str,
        subject: str | None = None,
        html_content: str | None = None,
        from_email: str | None = None,
        files: list[str] | None = None,
        cc: list[str] | str | None = None,
        bcc: list[str] | str | None = None,
        mime_subtype: str = "mixed",
        mime_charset: str = "utf-8",
        conn_id: str = "smtp_default",
        custom_headers: Mapping[str, Any] | None = None,
        auth_type: str = "basic",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.subject = subject
        self.html_content = html_content
        self.from_email = from_email
        self.files = files or []
        self.cc = cc
        self.bcc = bcc
        self.mime_subtype = mime_subtype
        self.mime_charset = mime_charset
        self.conn_id = conn_id
        self.custom_headers = dict(custom_headers or {})
        self.auth_type = auth_type

    def execute(self, context: Mapping[str, Any]) -> None:
        from millstream.sdk.hooks.smtp import send_email

        send_email(
            to=self.to,
            subject=self.subject or "",
            html_content=self.html_content or "",
            from_email=self.from_email,
            files=self.files,
            cc=self.cc,
            bcc=self.bcc,
            mime_subtype=self.mime_subtype,
            mime_charset=self.mime_charset,
            custom_headers=self.custom_headers,
            conn_id=self.conn_id,
            auth_type=self.auth_type,
        )
