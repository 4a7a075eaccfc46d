"""``Connection``: where an external system is and how to log in to it, as Airflow keeps it.

A connection has Airflow's fields (conn_id, conn_type, host, schema, login, password,
port, extra) and Airflow's two text forms, so connections exported from Airflow, or set
in ``AIRFLOW_CONN_*`` variables, mean the same here:

- the URI ``conn-type://login:password@host:port/schema?key=value``: the type's
  underscores become hyphens, every part is percent-encoded, a host that carries its own
  protocol is written ``type://protocol://…``, and an extra that is not a flat mapping of
  strings travels whole as ``?__extra__=<json>``;
- the JSON object ``{"conn_type": …, "host": …, "extra": {…}}``.

Reading a connection registers its password and extra values with the secrets masker,
so they show as ``***`` in task logs and rendered fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from millstream.errors import MillstreamError
from millstream.sdk import secrets
from millstream.sdk.masking import mask_secret

EXTRA_KEY = "__extra__"
FIELDS = ("conn_type", "description", "host", "schema", "login", "password", "port", "extra")


class ConnectionNotFoundError(MillstreamError, KeyError):
    """Airflow's AirflowNotFoundException for a conn_id no backend knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidConnectionError(MillstreamError, ValueError):
    """A URI or JSON text that is not a connection."""


def normalize_conn_type(conn_type: str | None) -> str | None:
    """Airflow's spelling: ``postgresql`` is ``postgres``, hyphens are underscores."""
    if conn_type is None:
        return None
    if conn_type == "postgresql":
        return "postgres"
    return conn_type.replace("-", "_")


def _hostname(parts: Any) -> str:
    """The host of a split URI, kept whole when it holds characters urlsplit cuts at."""
    host = unquote(parts.hostname or "")
    if "/" in host:
        host = parts.netloc
        if "@" in host:
            host = host.rsplit("@", 1)[1]
        if ":" in host:
            host = host.split(":", 1)[0]
        host = unquote(host)
    return host


class Connection:
    """One connection (see the module docstring). ``Connection.get(conn_id)`` reads one
    through the secrets backends; constructing one stores nothing."""

    def __init__(
        self,
        conn_id: str | None = None,
        conn_type: str | None = None,
        description: str | None = None,
        host: str | None = None,
        login: str | None = None,
        password: str | None = None,
        schema: str | None = None,
        port: int | str | None = None,
        extra: str | Mapping[str, Any] | None = None,
        uri: str | None = None,
    ) -> None:
        given = (conn_type, description, host, login, password, schema, port, extra)
        if uri is not None and any(v is not None for v in given):
            raise InvalidConnectionError(
                f"connection {conn_id!r}: give either uri= or the separate fields (conn_type, host, "
                "login, password, schema, port, extra), not both"
            )
        self.conn_id = conn_id or ""
        self.conn_type = normalize_conn_type(conn_type)
        self.description = description
        self.host = host
        self.login = login
        self.password = password
        self.schema = schema
        self.port = _port(port, conn_id)
        self.extra = json.dumps(dict(extra)) if isinstance(extra, Mapping) else extra
        if uri is not None:
            self.__dict__.update(Connection.from_uri(uri, conn_id or "").__dict__)

    # -- the two text forms -----------------------------------------------------------

    @classmethod
    def from_uri(cls, uri: str, conn_id: str = "") -> Connection:
        uri = uri.strip()
        schemes = uri.count("://")
        if schemes == 0 or schemes > 2:
            raise InvalidConnectionError(
                f"connection {conn_id!r}: {_safe(uri)!r} is not a connection URI "
                "(expected conn-type://login:password@host:port/schema?extra=...)"
            )
        conn_type = urlsplit(uri).scheme
        if not conn_type:
            raise InvalidConnectionError(
                f"connection {conn_id!r}: the URI has no connection type before '://'"
            )
        with_protocol = schemes == 2
        rest = uri.replace(f"{conn_type}://", "" if with_protocol else "//", 1)
        if with_protocol:
            protocol_part = rest.split("://", 1)[0]
            if "@" in protocol_part or ":" in protocol_part:
                raise InvalidConnectionError(
                    f"connection {conn_id!r}: {_safe(uri)!r} has a malformed host protocol"
                )
        parts = urlsplit(rest)
        try:
            port = parts.port
        except ValueError as e:
            raise InvalidConnectionError(f"connection {conn_id!r}: bad port in the URI: {e}") from None
        host = _hostname(parts)
        protocol = parts.scheme if with_protocol else None
        conn = cls(
            conn_id=conn_id,
            conn_type=conn_type,
            # Empty parts stay "" (not None), as Airflow leaves them.
            host=f"{protocol}://{host}" if protocol else host,
            schema=unquote(parts.path[1:]),
            login=unquote(parts.username) if parts.username else parts.username,
            password=unquote(parts.password) if parts.password else parts.password,
            port=port,
        )
        if parts.query:
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            conn.extra = query[EXTRA_KEY] if EXTRA_KEY in query else json.dumps(query)
        return conn

    def get_uri(self) -> str:
        conn_type = (self.conn_type or "").replace("_", "-")
        uri = f"{conn_type}://"
        host = self.host
        if host and "://" in host:
            protocol, host = host.split("://", 1)
            uri += f"{protocol}://"
        auth = ""
        if self.login is not None:
            auth += quote(self.login, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        if auth:
            uri += auth + "@"
        block = quote(host, safe="") if host else ""
        if self.port:
            block += f"@:{self.port}" if not block and not auth else f":{self.port}"
        if self.schema:
            block += "/" + quote(self.schema, safe="")
        uri += block
        if self.extra:
            extra = self.extra_dejson
            query: str | None
            try:
                query = urlencode(extra)
            except TypeError:
                query = None
            flat = query is not None and extra == dict(parse_qsl(query, keep_blank_values=True))
            uri += ("?" if self.schema else "/?") + (
                query if flat and query else urlencode({EXTRA_KEY: self.extra})
            )
        return uri

    @classmethod
    def from_json(cls, value: str | Mapping[str, Any], conn_id: str = "") -> Connection:
        try:
            data = json.loads(value) if isinstance(value, str) else dict(value)
        except ValueError as e:
            raise InvalidConnectionError(f"connection {conn_id!r}: not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise InvalidConnectionError(f"connection {conn_id!r}: the JSON form must be an object")
        unknown = set(data) - set(FIELDS) - {"conn_id", "uri"}
        if unknown:
            raise InvalidConnectionError(
                f"connection {conn_id!r}: unknown field(s) {', '.join(sorted(unknown))}; "
                f"a connection has {', '.join(FIELDS)}"
            )
        if "uri" in data:
            return cls.from_uri(data["uri"], conn_id or data.get("conn_id", ""))
        extra = data.pop("extra", None)
        data.pop("conn_id", None)
        return cls(conn_id=conn_id, extra=extra or None, **data)

    @classmethod
    def parse(cls, value: str, conn_id: str) -> Connection:
        """A value as a secrets backend holds it: JSON if it starts with ``{``, else a URI."""
        text = value.strip()
        return cls.from_json(text, conn_id) if text.startswith("{") else cls.from_uri(text, conn_id)

    def to_dict(self, *, prune_empty: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conn_id": self.conn_id,
            "conn_type": self.conn_type,
            "description": self.description,
            "host": self.host,
            "login": self.login,
            "password": self.password,
            "schema": self.schema,
            "port": self.port,
        }
        if prune_empty:
            out = {k: v for k, v in out.items() if v not in (None, "")}
        extra = self.extra_dejson
        if extra or not prune_empty:
            out["extra"] = extra
        return out

    def as_json(self) -> str:
        out = self.to_dict(prune_empty=True)
        out.pop("conn_id", None)
        return json.dumps(out)

    # -- reading ----------------------------------------------------------------------

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The extra as a dict (empty if there is none or it is not a JSON object)."""
        if not self.extra:
            return {}
        try:
            value = json.loads(self.extra)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def get_extra_dejson(self) -> dict[str, Any]:
        return self.extra_dejson

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        """The connection ``conn_id`` from the first secrets backend that has it."""
        value = secrets.lookup("conn", conn_id)
        if value is None:
            raise ConnectionNotFoundError(
                f"The conn_id `{conn_id}` isn't defined: add it with `millstream connections add {conn_id} "
                f"--conn-uri ...`, or set MILLSTREAM_CONN_{conn_id.upper()}"
            )
        conn = cls.parse(value, conn_id)
        conn.mask()
        return conn

    def mask(self) -> None:
        """Never show this connection's password or extra values in logs and renders."""
        if self.password:
            mask_secret(self.password)
        if self.extra:
            mask_secret(self.extra)
            mask_secret(self.extra_dejson)

    def get_hook(self, *, hook_params: Mapping[str, Any] | None = None) -> Any:
        from millstream.sdk.hooks.registry import hook_for

        return hook_for(self, **dict(hook_params or {}))

    def test_connection(self) -> tuple[bool, str]:
        """Ask this connection's hook to reach the system: (worked, what happened)."""
        try:
            hook = self.get_hook()
        except MillstreamError as e:
            return False, str(e)
        test = getattr(hook, "test_connection", None)
        if test is None:
            return False, f"Hook {type(hook).__name__} doesn't implement or inherit test_connection method"
        try:
            ok, message = test()
            return bool(ok), str(message)
        except Exception as e:  # noqa: BLE001 - any failure to connect is the answer
            return False, f"{type(e).__name__}: {e}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Connection(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, host={self.host!r})"


def _port(port: int | str | None, conn_id: str | None) -> int | None:
    if port in (None, ""):
        return None
    try:
        return int(port)
    except (TypeError, ValueError):
        raise InvalidConnectionError(
            f"connection {conn_id!r}: port must be a whole number, got {port!r}"
        ) from None


def _safe(uri: str) -> str:
    """A URI fit for an error message: the password, if any, hidden."""
    head, at, tail = uri.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return uri
    scheme, _, creds = head.rpartition("//")
    return f"{scheme}//{creds.split(':', 1)[0]}:***@{tail}"
