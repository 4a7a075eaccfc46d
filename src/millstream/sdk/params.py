"""DAG params: defaults declared on the DAG, overridden per run by its conf."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from millstream.errors import ParamValidationError

_UNSET: Any = object()


class Param:
    """A param with a default and an optional JSON-schema (``type``, ``enum``, ``minimum``…).

    >>> Param(5, type="integer", minimum=1)
    """

    def __init__(self, default: Any = _UNSET, description: str | None = None, **schema: Any):
        self.default = default
        self.description = description
        self.schema = schema

    def has_default(self) -> bool:
        return self.default is not _UNSET

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": self.schema}
        if self.has_default():
            d["default"] = self.default
        if self.description:
            d["description"] = self.description
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Param:
        return cls(d.get("default", _UNSET), d.get("description"), **d.get("schema", {}))

    def __repr__(self) -> str:
        return f"Param({self.default!r}, {self.schema!r})"


def params_to_dict(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Serialize DAG params (plain values become params with no schema)."""
    out: dict[str, Any] = {}
    for name, value in (params or {}).items():
        p = value if isinstance(value, Param) else Param(value)
        out[name] = p.to_dict()
    return out


def resolve_params(declared: Mapping[str, Any], conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """The params a run sees: defaults overridden by ``conf``, each checked by its schema.

    ``declared`` is the serialized form from :func:`params_to_dict`. Keys in ``conf``
    that are not declared are passed through, as Airflow does.
    """
    conf = dict(conf or {})
    out: dict[str, Any] = {}
    for name, d in declared.items():
        p = Param.from_dict(d)
        if name in conf:
            value = conf.pop(name)
        elif p.has_default():
            value = p.default
        else:
            raise ParamValidationError(
                f"param {name!r} has no default and was not given in the run's conf; "
                f"trigger with --conf '{{\"{name}\": ...}}'"
            )
        if p.schema:
            try:
                jsonschema.validate(value, p.schema)
            except jsonschema.ValidationError as e:
                raise ParamValidationError(f"param {name!r}: {e.message}") from None
        out[name] = value
    out.update(conf)
    return out
