"""``ObjectStoragePath``: Airflow 3's path on object storage, a ``pathlib``-like path on any
fsspec filesystem (``s3://bucket/key``, ``gs://``, ``file://``, ``memory://``…), built on
universal_pathlib as Airflow's is.

A path may name a connection, as the user part of its URL (``s3://aws_default@bucket/``)
or with ``conn_id=``; derived paths (``base / "file"``) keep it, and so does a path that
travels between tasks as a result. The filesystem is made from the connection's
credentials (:func:`storage_options_for`) when the path is first used. Without a
connection the filesystem's own configuration applies (environment credentials, or
storage options given as keyword arguments).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from upath import UPath
from upath.extensions import ProxyUPath, classmethod_or_method


#: Connection fields -> fsspec storage options, per protocol. The connection's extra is
#: taken as storage options as well (it wins), so any fsspec option can be set there.
def storage_options_for(protocol: str, conn: Any) -> dict[str, Any]:
    extra = dict(conn.extra_dejson)
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        key = extra.pop("aws_access_key_id", None) or conn.login
        secret = extra.pop("aws_secret_access_key", None) or conn.password
        if key:
            options["key"] = key
        if secret:
            options["secret"] = secret
        endpoint = extra.pop("endpoint_url", None) or (
            conn.host if conn.host and "://" in conn.host else None
        )
        if endpoint:
            options["endpoint_url"] = endpoint
        region = extra.pop("region_name", None)
        if region:
            options.setdefault("client_kwargs", {})["region_name"] = region
    elif protocol in ("gs", "gcs"):
        token = extra.pop("keyfile_dict", None) or extra.pop("key_path", None)
        if token:
            options["token"] = (
                json.loads(token) if isinstance(token, str) and token.startswith("{") else token
            )
        project = extra.pop("project", None)
        if project:
            options["project"] = project
    elif protocol in ("sftp", "ssh", "ftp"):
        if conn.host:
            options["host"] = conn.host
        if conn.port:
            options["port"] = conn.port
        if conn.login:
            options["username"] = conn.login
        if conn.password:
            options["password"] = conn.password
    return {**options, **extra}


class _ConnectionFS:
    """Stands where the filesystem would be for a path that names a connection: the
    connection is read (and its secrets masked) on first use, not when the path is made,
    so a DAG file can build paths at parse time without reaching the secrets backends."""

    def __init__(self, protocol: str, conn_id: str, options: dict[str, Any]) -> None:
        self._protocol = protocol
        self._conn_id = conn_id
        self._options = options
        self._fs: Any = None

    def _resolve(self) -> Any:
        if self._fs is None:
            import fsspec

            from millstream.sdk.connection import Connection

            conn = Connection.get(self._conn_id)
            options = {**storage_options_for(self._protocol, conn), **self._options}
            self._fs = fsspec.filesystem(self._protocol, **options)
        return self._fs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolve(), name)


class ObjectStoragePath(ProxyUPath):
    """A path on object storage (see the module docstring)."""

    __slots__ = ("_conn_id",)

    def __init__(
        self, *args: Any, protocol: str | None = None, conn_id: str | None = None, **storage_options: Any
    ):
        storage_options.pop("conn_id", None)
        if args and isinstance(args[0], ObjectStoragePath):
            conn_id = conn_id or args[0].conn_id
        elif args:
            parsed = urlsplit(str(args[0]))
            userinfo, has_user, host = parsed.netloc.rpartition("@")
            if has_user and parsed.scheme:
                conn_id = conn_id or userinfo or None
                args = (parsed._replace(netloc=host).geturl(), *args[1:])
                protocol = protocol or parsed.scheme
        self._conn_id = conn_id
        super().__init__(*args, protocol=protocol, **storage_options)
        self._refuse_unresolved(self.__wrapped__)

    def _refuse_unresolved(self, wrapped: UPath) -> None:
        if self._conn_id is not None:
            wrapped._fs_cached = _ConnectionFS(wrapped.protocol, self._conn_id, dict(wrapped.storage_options))

    @classmethod_or_method
    def _from_upath(cls_or_self: Any, upath: UPath, /) -> Any:  # type: ignore[override]  # noqa: N805
        """Wrap a derived path, keeping the connection of the path it came from."""
        is_instance = isinstance(cls_or_self, ObjectStoragePath)
        cls = type(cls_or_self) if is_instance else cls_or_self
        if isinstance(upath, cls):
            return upath
        obj = object.__new__(cls)
        obj.__wrapped__ = upath
        obj._conn_id = cls_or_self._conn_id if is_instance else None
        obj._refuse_unresolved(upath)
        return obj

    @property
    def conn_id(self) -> str | None:
        return getattr(self, "_conn_id", None)

    @property
    def bucket(self) -> str:
        return urlsplit(str(self)).netloc

    @property
    def container(self) -> str:
        return self.bucket

    @property
    def key(self) -> str:
        return urlsplit(str(self)).path.lstrip("/")

    @property
    def namespace(self) -> str:
        return f"{self.protocol}://{self.bucket}" if self.bucket else self.protocol

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectStoragePath) and (self.protocol, self.conn_id, str(self)) == (
            other.protocol,
            other.conn_id,
            str(other),
        )

    def __hash__(self) -> int:
        return hash((self.protocol, self.conn_id, str(self)))


#: How a path travels as a task's result (JSON): tagged, so the reader gets a path back.
RESULT_TAG = "__objectstoragepath__"


def to_result(path: ObjectStoragePath) -> dict[str, Any]:
    return {RESULT_TAG: str(path), "conn_id": path.conn_id}


def from_result(value: dict[str, Any]) -> Any:
    if RESULT_TAG in value and set(value) <= {RESULT_TAG, "conn_id"}:
        return ObjectStoragePath(value[RESULT_TAG], conn_id=value.get("conn_id"))
    return value
