"""``SmtpHook`` and ``send_email``: mail through an SMTP connection, as Airflow's smtp
provider sends it.

The connection gives host, port, login and password; its extra takes Airflow's keys:
``from_email``, ``disable_ssl`` (SSL from the first byte is on unless this is true),
``disable_tls`` (STARTTLS is on unless this is true), ``timeout`` (30 s), ``retry_limit``
(5 reconnects), ``ssl_context`` (``default`` or ``none``). Strings such as ``"false"`` in
an extra that came from a URI mean false here (Airflow's ``bool("false")`` would be true).
"""

from __future__ import annotations

import mimetypes
import smtplib
import ssl
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, getaddresses
from pathlib import Path
from typing import Any

from millstream.errors import MillstreamError
from millstream.sdk.connection import Connection
from millstream.sdk.hooks.base import BaseHook
from millstream.sdk.mail import recipients


def flag(value: Any) -> bool:
    """A connection-extra boolean, whether it arrived as JSON or as URI text."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class SmtpHook(BaseHook):
    conn_name_attr = "smtp_conn_id"
    default_conn_name = "smtp_default"
    conn_type = "smtp"
    hook_name = "SMTP"

    def __init__(self, smtp_conn_id: str = default_conn_name, auth_type: str = "basic") -> None:
        super().__init__()
        if auth_type not in ("basic",):
            raise MillstreamError(
                f"SmtpHook: auth_type {auth_type!r} is not supported by Millstream; use 'basic' (login and password)"
            )
        self.smtp_conn_id = smtp_conn_id
        self._conn: Connection | None = None
        self._client: smtplib.SMTP | None = None

    @classmethod
    def from_connection(cls, conn: Connection, **hook_params: Any) -> SmtpHook:
        hook = cls(smtp_conn_id=conn.conn_id, **hook_params)
        hook._conn = conn
        return hook

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self.get_connection(self.smtp_conn_id)
        return self._conn

    def _extra(self, key: str, default: Any = None) -> Any:
        return self.conn.extra_dejson.get(key, default)

    @property
    def from_email(self) -> str | None:
        value = self._extra("from_email")
        return str(value) if value else None

    @property
    def use_ssl(self) -> bool:
        return not flag(self._extra("disable_ssl", False))

    @property
    def smtp_starttls(self) -> bool:
        return not flag(self._extra("disable_tls", False))

    def _ssl_context(self) -> ssl.SSLContext | None:
        choice = self._extra("ssl_context")
        if choice not in (None, "default", "none"):
            raise MillstreamError(
                f"connection {self.smtp_conn_id!r}: extra ssl_context must be 'default' or 'none', got {choice!r}"
            )
        if choice == "none":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context()

    def get_conn(self) -> SmtpHook:
        """Connect and log in (retrying ``retry_limit`` times); the hook is its own client."""
        if self._client is not None:
            return self
        c = self.conn
        if not c.host:
            raise MillstreamError(
                f"connection {self.smtp_conn_id!r} has no host: the SMTP server to send through"
            )
        timeout = float(self._extra("timeout", 30))
        retries = int(self._extra("retry_limit", 5))
        last: Exception | None = None
        for _ in range(retries + 1):
            try:
                if self.use_ssl:
                    client: smtplib.SMTP = smtplib.SMTP_SSL(
                        c.host, c.port or 465, timeout=timeout, context=self._ssl_context()
                    )
                else:
                    client = smtplib.SMTP(c.host, c.port or 25, timeout=timeout)
                break
            except (OSError, smtplib.SMTPException) as e:
                last = e
        else:
            raise MillstreamError(
                f"connection {self.smtp_conn_id!r}: cannot reach the SMTP server {c.host}:{c.port}: {last}"
            )
        if self.smtp_starttls and not self.use_ssl:
            client.starttls(context=self._ssl_context())
        if c.login:
            client.login(c.login, c.password or "")
        self._client = client
        return self

    def __enter__(self) -> SmtpHook:
        return self.get_conn()

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except smtplib.SMTPException:
                self._client.close()
            self._client = None

    def send_email_smtp(
        self,
        *,
        to: str | Iterable[str],
        subject: str,
        html_content: str,
        from_email: str | None = None,
        files: list[str] | None = None,
        dryrun: bool = False,
        cc: str | Iterable[str] | None = None,
        bcc: str | Iterable[str] | None = None,
        mime_subtype: str = "mixed",
        mime_charset: str = "utf-8",
        custom_headers: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> EmailMessage:
        sender = from_email or self.from_email
        if not sender:
            raise MillstreamError(
                f"no sender for mail through {self.smtp_conn_id!r}: pass from_email or set it in the "
                'connection\'s extra ({"from_email": ...})'
            )
        msg = build_message(
            to=to,
            subject=subject,
            html_content=html_content,
            from_email=sender,
            files=files,
            cc=cc,
            bcc=bcc,
            mime_subtype=mime_subtype,
            mime_charset=mime_charset,
            custom_headers=custom_headers,
        )
        everyone = [a for _, a in getaddresses(recipients(to) + recipients(cc) + recipients(bcc))]
        if not dryrun:
            if self._client is None:
                with self:
                    assert self._client is not None
                    self._client.send_message(msg, from_addr=sender, to_addrs=everyone)
            else:
                self._client.send_message(msg, from_addr=sender, to_addrs=everyone)
        return msg

    def test_connection(self) -> tuple[bool, str]:
        try:
            with self:
                assert self._client is not None
                code, _ = self._client.noop()
        except Exception as e:  # noqa: BLE001 - any failure is the test's answer
            return False, str(e)
        return (True, "Connection successfully tested") if code == 250 else (False, f"NOOP answered {code}")


def build_message(
    *,
    to: str | Iterable[str],
    subject: str,
    html_content: str,
    from_email: str,
    files: list[str] | None = None,
    cc: str | Iterable[str] | None = None,
    bcc: str | Iterable[str] | None = None,
    mime_subtype: str = "mixed",
    mime_charset: str = "utf-8",
    custom_headers: Mapping[str, Any] | None = None,
) -> EmailMessage:
    """The message Airflow builds: HTML body, attachments by file name, Bcc kept off the
    headers (it goes in the envelope only)."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = from_email
    msg["To"] = ", ".join(recipients(to))
    if cc:
        msg["CC"] = ", ".join(recipients(cc))
    msg["Date"] = formatdate(localtime=True)
    for k, v in (custom_headers or {}).items():
        msg[k] = str(v)
    msg.set_content(html_content or "", subtype="html", charset=mime_charset)
    for name in files or []:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise MillstreamError(f"cannot attach {name!r} to the mail: {e}") from None
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        main, _, sub = ctype.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=path.name)
    if files and mime_subtype != "mixed":
        msg.set_param("type", f"multipart/{mime_subtype}", header="Content-Type")
    return msg


def send_email(
    to: str | Iterable[str],
    subject: str,
    html_content: str,
    files: list[str] | None = None,
    dryrun: bool = False,
    cc: str | Iterable[str] | None = None,
    bcc: str | Iterable[str] | None = None,
    mime_subtype: str = "mixed",
    mime_charset: str = "utf-8",
    conn_id: str | None = None,
    from_email: str | None = None,
    custom_headers: Mapping[str, Any] | None = None,
    auth_type: str = "basic",
    **kwargs: Any,
) -> EmailMessage:
    """Airflow's ``airflow.utils.email.send_email``: through the SMTP connection
    ``conn_id`` (default ``smtp_default``). EmailOperator and SmtpNotifier send through it."""
    hook = SmtpHook(smtp_conn_id=conn_id or SmtpHook.default_conn_name, auth_type=auth_type)
    return hook.send_email_smtp(
        to=to,
        subject=subject,
        html_content=html_content,
        from_email=from_email,
        files=files,
        dryrun=dryrun,
        cc=cc,
        bcc=bcc,
        mime_subtype=mime_subtype,
        mime_charset=mime_charset,
        custom_headers=custom_headers,
    )
