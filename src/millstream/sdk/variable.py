"""``Variable``: named settings of a deployment (a bucket name, a threshold, an API key),
read by DAG files and tasks through the secrets backends, as in Airflow.

``Variable.get`` asks the environment, then any configured backend, then the store;
the value it returns is registered with the secrets masker, as Airflow 3 does, so it
shows as ``***`` in task logs and rendered fields. ``set`` and ``delete`` write to the
store, which encrypts every value at rest.
"""

from __future__ import annotations

import json
from typing import Any

from millstream.errors import MillstreamError
from millstream.sdk import secrets
from millstream.sdk.masking import mask_secret

_NOTSET: Any = object()


class VariableNotFoundError(MillstreamError, KeyError):
    """No backend has the key (Airflow raises a KeyError too)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Variable:
    """Airflow's ``Variable`` API: class methods over the secrets backends."""

    def __init__(self, key: str, val: Any = None, description: str | None = None) -> None:
        self.key = key
        self.val = val
        self.description = description

    @staticmethod
    def get(key: str, default: Any = _NOTSET, deserialize_json: bool = False) -> Any:
        raw = secrets.lookup("var", key)
        if raw is None:
            if default is _NOTSET:
                raise VariableNotFoundError(
                    f"Variable {key} does not exist: set it with `millstream variables set {key} VALUE`, "
                    f"or set MILLSTREAM_VAR_{key.upper()}"
                )
            if default is not None:
                mask_secret(default, key)
            return default
        mask_secret(raw, key)
        if not deserialize_json:
            return raw
        try:
            value = json.loads(raw)
        except ValueError as e:
            raise MillstreamError(f"Variable {key} is not valid JSON (deserialize_json=True): {e}") from None
        mask_secret(value, key)
        return value

    @staticmethod
    def set(key: str, value: Any, description: str | None = None, serialize_json: bool = False) -> None:
        text = json.dumps(value, indent=2) if serialize_json else str(value)
        secrets.metastore().set_variable(key, text, description)

    @staticmethod
    def delete(key: str) -> int:
        """Delete ``key`` from the store; how many were deleted (0 or 1)."""
        return int(secrets.metastore().delete_variable(key))

    @staticmethod
    def setdefault(
        key: str, default: Any, description: str | None = None, deserialize_json: bool = False
    ) -> Any:
        """The value of ``key``; if it has none, ``default`` is stored and returned."""
        value = Variable.get(key, default=None, deserialize_json=deserialize_json)
        if value is None:
            if default is None:
                raise ValueError("Variable.setdefault needs a default other than None")
            Variable.set(key, default, description=description, serialize_json=deserialize_json)
            return default
        return value

    def __repr__(self) -> str:
        return f"Variable(key={self.key!r})"
