"""``BaseHook``: what every hook shares — finding its connection by id — and the table
of which hook serves which connection type (``Connection.get_hook()``, `connections test`)."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from millstream.errors import MillstreamError
from millstream.sdk.connection import Connection

#: conn_type -> the hook class (module path, class name) that serves it.
HOOKS: dict[str, tuple[str, str]] = {
    "postgres": ("millstream.sdk.hooks.sql", "DbApiHook"),
    "mysql": ("millstream.sdk.hooks.sql", "DbApiHook"),
    "mariadb": ("millstream.sdk.hooks.sql", "DbApiHook"),
    "sqlite": ("millstream.sdk.hooks.sql", "DbApiHook"),
    "http": ("millstream.sdk.hooks.http", "HttpHook"),
    "https": ("millstream.sdk.hooks.http", "HttpHook"),
    "smtp": ("millstream.sdk.hooks.smtp", "SmtpHook"),
    "email": ("millstream.sdk.hooks.smtp", "SmtpHook"),
    "slackwebhook": ("millstream.sdk.hooks.slack", "SlackWebhookHook"),
}


class BaseHook:
    """A client of one external system. Subclasses name their default connection in
    ``default_conn_name`` and the argument that takes it in ``conn_name_attr``."""

    conn_name_attr = "conn_id"
    default_conn_name = "default_conn_id"
    conn_type = ""
    hook_name = ""

    def __init__(self, logger_name: str | None = None) -> None:
        self.log = logging.getLogger(logger_name or f"{type(self).__module__}.{type(self).__name__}")

    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        """The connection ``conn_id`` from the secrets backends (environment, configured
        backend, store); its secrets are masked in logs from here on."""
        return Connection.get(conn_id)

    @classmethod
    def get_hook(cls, conn_id: str, hook_params: dict[str, Any] | None = None) -> Any:
        return cls.get_connection(conn_id).get_hook(hook_params=hook_params)

    def get_conn(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_conn()")

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {}


def hook_for(conn: Connection, **hook_params: Any) -> Any:
    """The hook that serves ``conn``'s type, made for ``conn``."""
    target = HOOKS.get(conn.conn_type or "")
    if target is None:
        known = ", ".join(sorted(HOOKS))
        raise MillstreamError(
            f"connection {conn.conn_id!r}: no hook for conn_type {conn.conn_type!r} (Millstream has hooks "
            f"for {known})"
        )
    module, name = target
    cls = getattr(importlib.import_module(module), name)
    return cls.from_connection(conn, **hook_params)
