"""Which hook serves which connection type: ``Connection.get_hook()`` and
``millstream connections test`` (hook modules load only when asked for)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from millstream.errors import MillstreamError

if TYPE_CHECKING:
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
