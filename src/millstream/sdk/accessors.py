"""``{{ var.value.x }}``, ``{{ var.json.x }}`` and ``{{ conn.x.host }}``: Variables and
Connections in templates and in a task's context, looked up only when a template names
them, so a task that uses none pays nothing."""

from __future__ import annotations

from typing import Any

from millstream.sdk.connection import Connection
from millstream.sdk.variable import _NOTSET, Variable


class _VariableValues:
    def __init__(self, deserialize_json: bool) -> None:
        self._json = deserialize_json

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return Variable.get(key, deserialize_json=self._json)

    def __getitem__(self, key: str) -> Any:
        return Variable.get(key, deserialize_json=self._json)

    def get(self, key: str, default: Any = _NOTSET) -> Any:
        return Variable.get(key, default=default, deserialize_json=self._json)

    def __repr__(self) -> str:
        return "<variables: .value.KEY / .json.KEY>"


class VariableAccessor:
    """``var`` in a template: ``var.value`` gives text, ``var.json`` parsed JSON."""

    def __init__(self) -> None:
        self.value = _VariableValues(False)
        self.json = _VariableValues(True)

    def __repr__(self) -> str:
        return "<variables>"


class ConnectionAccessor:
    """``conn`` in a template: ``conn.my_db.host``, ``conn.get('my_db')``."""

    def __getattr__(self, conn_id: str) -> Connection:
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)
        return Connection.get(conn_id)

    def __getitem__(self, conn_id: str) -> Connection:
        return Connection.get(conn_id)

    def get(self, conn_id: str, default: Any = None) -> Any:
        from millstream.sdk.connection import ConnectionNotFoundError

        try:
            return Connection.get(conn_id)
        except ConnectionNotFoundError:
            return default

    def __repr__(self) -> str:
        return "<connections>"
