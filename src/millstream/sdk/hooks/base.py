"""``BaseHook``: what every hook shares — finding its connection by id. Which hook serves
which connection type is :mod:`millstream.sdk.hooks.registry`."""

from __future__ import annotations

import logging
from typing import Any

from millstream.sdk.connection import Connection


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
